/**
 * Summarises V8 CPU profiles (`npm run bench -- --cpu-prof DIR` writes them): self time per package
 * or source file, and the hottest functions, so "where does the worker's CPU go" has an answer.
 *
 *   node --import tsx bench/profile-summary.ts DIR [--top 25]
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { parseArgs } from 'node:util';
import { projectRoot } from './processes';
import { round, table } from './stats';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples?: number[];
}

const IDLE = new Set(['(idle)', '(program)', '(garbage collector)']);

/** Where a frame's code lives: a package, one of our files, Node itself, or V8. */
function areaOf(url: string, functionName: string): string {
  if (IDLE.has(functionName)) return functionName;
  if (!url) return '(native)';
  if (url.startsWith('node:')) return 'node internals';
  const path = url.replace(/^file:\/\//, '');
  const nm = path.lastIndexOf('node_modules/');
  if (nm >= 0) {
    const rest = path.slice(nm + 'node_modules/'.length).split('/');
    return rest[0]!.startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]!;
  }
  return path.startsWith(projectRoot) ? relative(projectRoot, path) : path;
}

/** Self time (ms) per area and per function of one profile. */
export function summariseProfile(profile: CpuProfile) {
  const total = profile.nodes.reduce((a, n) => a + (n.hitCount ?? 0), 0);
  const msPerHit = total > 0 ? (profile.endTime - profile.startTime) / 1000 / total : 0;
  const areas = new Map<string, number>();
  const functions = new Map<string, number>();
  for (const node of profile.nodes) {
    const hits = node.hitCount ?? 0;
    if (hits === 0) continue;
    const { functionName, url, lineNumber } = node.callFrame;
    const area = areaOf(url, functionName);
    areas.set(area, (areas.get(area) ?? 0) + hits * msPerHit);
    const fn = `${functionName || '(anonymous)'} ${area}:${lineNumber + 1}`;
    functions.set(fn, (functions.get(fn) ?? 0) + hits * msPerHit);
  }
  return { areas, functions, wallMs: (profile.endTime - profile.startTime) / 1000 };
}

function main(): void {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: { top: { type: 'string', default: '25' } },
  });
  const dir = positionals[0];
  if (!dir) throw new Error('usage: node --import tsx bench/profile-summary.ts DIR [--top N]');
  const top = Number(values.top);
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'))) {
    const { areas, functions, wallMs } = summariseProfile(
      JSON.parse(readFileSync(join(dir, file), 'utf8')) as CpuProfile,
    );
    const busy = [...areas.entries()].filter(([a]) => !IDLE.has(a)).reduce((a, [, ms]) => a + ms, 0);
    const pct = (ms: number) => `${round((ms / busy) * 100, 1)} %`;
    console.log(
      `\n${file}: ${round(wallMs / 1000, 1)} s profiled, ${round(busy / 1000, 1)} s busy (GC and idle excluded)`,
    );
    console.log(`GC: ${round((areas.get('(garbage collector)') ?? 0) / 1000, 1)} s\n`);
    const byTime = (m: Map<string, number>) =>
      [...m.entries()].filter(([k]) => !IDLE.has(k)).sort((a, b) => b[1] - a[1]);
    console.log(
      table(
        ['area', 'self ms', 'share'],
        byTime(areas)
          .slice(0, top)
          .map(([a, ms]) => [a, round(ms, 0), pct(ms)]),
      ),
    );
    console.log('');
    console.log(
      table(
        ['function', 'self ms', 'share'],
        byTime(functions)
          .filter(([f]) => !f.startsWith('(idle)') && !f.startsWith('(program)') && !f.startsWith('(garbage'))
          .slice(0, top)
          .map(([f, ms]) => [f, round(ms, 0), pct(ms)]),
      ),
    );
  }
}

if (require.main === module) main();
