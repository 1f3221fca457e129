'use strict'
// connection-pools: the package entry. Importing it opens no connection.

const database = require('./lib/database')
const openai = require('./lib/openai')
const errors = require('./lib/errors')
const { PostgrestError } = require('./lib/builder')
const { createConnectionsRouter } = require('./lib/router')

module.exports = {
  DatabasePool: database.DatabasePool,
  supabaseAdmin: database.supabaseAdmin,
  supabase: database.supabase,
  testConnection: database.testConnection,
  checkDatabaseHealth: database.checkDatabaseHealth,
  OpenAIPool: openai.OpenAIPool,
  openai: openai.openai,
  testOpenAIConnection: openai.testOpenAIConnection,
  OpenAIError: openai.OpenAIError,
  ConnectionPoolError: errors.ConnectionPoolError,
  DatabaseError: errors.DatabaseError,
  PostgrestError,
  createConnectionsRouter,
}
