'use strict'
// connection-pools: the package entry. Importing it opens no connection.

const database = require('./lib/database')
const errors = require('./lib/errors')
const { PostgrestError } = require('./lib/builder')

module.exports = {
  DatabasePool: database.DatabasePool,
  supabaseAdmin: database.supabaseAdmin,
  supabase: database.supabase,
  testConnection: database.testConnection,
  checkDatabaseHealth: database.checkDatabaseHealth,
  ConnectionPoolError: errors.ConnectionPoolError,
  DatabaseError: errors.DatabaseError,
  PostgrestError,
}
