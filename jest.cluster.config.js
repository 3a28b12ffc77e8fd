/**
 * The cluster suite (test/cluster, `npm run test:cluster`): one PostgreSQL + Temporal server for the run, one file
 * at a time (each file starts its own API, control worker and two model runner processes). `npm test` skips it.
 */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test/cluster'],
  transform: { '^.+\\.ts$': ['@swc/jest'] },
  globalSetup: '<rootDir>/test/cluster/global-setup.ts',
  globalTeardown: '<rootDir>/test/cluster/global-teardown.ts',
  testTimeout: 120_000,
  reporters: ['default', '<rootDir>/scripts/jest-closing-line.cjs'],
  maxWorkers: 1,
};
