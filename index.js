'use strict'
// connection-pools: the package entry. Importing it opens no connection.
//
// Each export is assigned as `exports.name = ...` on purpose: that is the form Node's CommonJS
// export detection (cjs-module-lexer) recognises, so an ES module can write
// `import { DatabasePool, OpenAIPool } from 'connection-pools'` and get the very same objects
// (one pool per process) as `require`. There is no second, ESM copy of the package to drift apart.

const database = require('./lib/database')
const openai = require('./lib/openai')
const errors = require('./lib/errors')
const { PostgrestError } = require('@supabase/postgrest-js')
const router = require('./lib/router')

exports.DatabasePool = database.DatabasePool
exports.supabaseAdmin = database.supabaseAdmin
exports.supabase = database.supabase
exports.createClient = database.createClient
exports.testConnection = database.testConnection
exports.checkDatabaseHealth = database.checkDatabaseHealth
exports.OpenAIPool = openai.OpenAIPool
exports.openai = openai.openai
exports.testOpenAIConnection = openai.testOpenAIConnection
exports.ConnectionPoolError = errors.ConnectionPoolError
exports.DatabaseError = errors.DatabaseError
exports.PostgrestError = PostgrestError
exports.createConnectionsRouter = router.createConnectionsRouter
