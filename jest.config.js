// Jest runs the TypeScript specs in __test__/ against a real PostgreSQL: the one at DATABASE_URL,
// or an embedded one that global-setup starts on a free port.
module.exports = {
  preset: 'ts-jest',
  testEnvironment: 'node',
  testMatch: ['<rootDir>/__test__/**/*.spec.ts'],
  globalSetup: '<rootDir>/__test__/setup/global-setup.mjs',
  globalTeardown: '<rootDir>/__test__/setup/global-teardown.mjs',
  testTimeout: 60000,
  // Two cores shared with Postgres and tokio: two workers keep runs steady.
  maxWorkers: 2,
}
