// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import { importX } from 'eslint-plugin-import-x';

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', '.venv/**', '.data/**', 'coverage/**', '*.config.js', '*.config.mjs'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    plugins: { 'import-x': importX },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'import-x/no-cycle': 'error',
    },
  },
  {
    // Workflow code runs in Temporal's deterministic sandbox, and everything the sandbox loads lives under
    // src/workflows/: no Node built-ins, no Node-side SDK packages, activities only as types, nothing from the rest
    // of src/ (Node code).
    files: ['src/workflows/**/*.ts'],
    rules: {
      '@typescript-eslint/no-restricted-imports': [
        'error',
        {
          patterns: [
            { group: ['node:*'], message: 'Workflows must not import Node built-ins.' },
            {
              group: ['**/activities', '**/activities/*'],
              allowTypeImports: true,
              message: 'Workflows import activities only as types.',
            },
            {
              group: ['@temporalio/client', '@temporalio/worker', '@temporalio/activity', '@temporalio/testing'],
              message: 'Workflows use @temporalio/workflow and @temporalio/common only.',
            },
            {
              regex:
                '^\\.\\./\\.\\./(?!activities)|^\\.\\./(?!\\.\\./|activities|shared|inference-request|webhook-delivery|admission-queue|file-sweep)',
              message: 'Sandbox code imports only from src/workflows/ (and activities as types).',
            },
          ],
          paths: ['fs', 'path', 'http', 'https', 'crypto', 'os', 'child_process', 'net', 'dns', 'events', 'timers'].map(
            (name) => ({ name, message: 'Workflows must not import Node built-ins.' }),
          ),
        },
      ],
    },
  },
  {
    files: ['scripts/**/*.mjs'],
    languageOptions: { globals: { process: 'readonly', console: 'readonly' } },
  },
  {
    files: ['scripts/**/*.cjs'],
    languageOptions: { sourceType: 'commonjs', globals: { process: 'readonly', module: 'writable' } },
  },
);
