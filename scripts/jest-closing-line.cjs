/**
 * Jest reporter that ends a run with one plain `jest: N passed, N failed, N skipped` line, which CI reads to know
 * how many tests ran (Jest's own summary spreads the counts over a table).
 */
class ClosingLineReporter {
  onRunComplete(_contexts, results) {
    const line = `jest: ${results.numPassedTests} passed, ${results.numFailedTests} failed, ${results.numPendingTests + results.numTodoTests} skipped`;
    process.stdout.write(`${line}\n`);
  }
}

module.exports = ClosingLineReporter;
