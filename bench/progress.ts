const BAR_WIDTH = 28;
const REDRAW_EVERY_MS = 100;

/**
 * A one-line progress bar on stderr, redrawn in place. On a terminal only: piped or CI output gets
 * one line per finished phase instead, so logs stay readable.
 */
export class Progress {
  private readonly tty = Boolean(process.stderr.isTTY);
  private label = '';
  private total = 0;
  private done = 0;
  private started = 0;
  private lastDraw = 0;
  private extra = '';

  /** Begins a phase of `total` steps (0 = unknown). */
  start(label: string, total: number): void {
    this.label = label;
    this.total = total;
    this.done = 0;
    this.extra = '';
    this.started = Date.now();
    this.draw(true);
  }

  /** Advances by `n` steps; `extra` is shown after the counts. */
  tick(n = 1, extra?: string): void {
    this.done += n;
    if (extra !== undefined) this.extra = extra;
    this.draw(false);
  }

  /** Sets the count of done steps. */
  update(done: number, extra?: string): void {
    this.done = done;
    if (extra !== undefined) this.extra = extra;
    this.draw(false);
  }

  /** Replaces the free text shown after the counts. */
  note(extra: string): void {
    this.extra = extra;
    this.draw(false);
  }

  /** Ends the phase, leaving its final line on screen. */
  finish(summary = ''): void {
    const seconds = ((Date.now() - this.started) / 1000).toFixed(1);
    const line = `${this.label}: ${this.done}${this.total ? `/${this.total}` : ''} in ${seconds} s${summary ? `  ${summary}` : ''}`;
    process.stderr.write(this.tty ? `\r\x1b[2K${line}\n` : `${line}\n`);
  }

  /** Prints a line without breaking the bar. */
  log(line: string): void {
    process.stderr.write(this.tty ? `\r\x1b[2K${line}\n` : `${line}\n`);
    this.draw(true);
  }

  private draw(force: boolean): void {
    if (!this.tty || !this.label) return;
    const now = Date.now();
    if (!force && now - this.lastDraw < REDRAW_EVERY_MS) return;
    this.lastDraw = now;
    const fraction = this.total > 0 ? Math.min(1, this.done / this.total) : 0;
    const filled = Math.round(fraction * BAR_WIDTH);
    const bar = this.total > 0 ? `[${'#'.repeat(filled)}${'.'.repeat(BAR_WIDTH - filled)}] ` : '';
    const elapsed = (now - this.started) / 1000;
    const rate = elapsed > 0 ? (this.done / elapsed).toFixed(1) : '0.0';
    const counts = `${this.done}${this.total ? `/${this.total}` : ''}`;
    const columns = process.stderr.columns ?? 120;
    const line = `${this.label} ${bar}${counts} ${rate}/s ${elapsed.toFixed(0)}s ${this.extra}`.slice(0, columns - 1);
    process.stderr.write(`\r\x1b[2K${line}`);
  }
}
