// Reads a process's resident memory and thread count from /proc, for tests that check that
// Prosody's memory returns to its baseline and that its worker threads stay bounded.
import fs from 'node:fs';

/** `{ rssKb, threads }` of process `pid`. */
export function procStat(pid) {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const field = (name) => Number(status.match(new RegExp(`^${name}:\\s+(\\d+)`, 'm'))?.[1]);
  return { rssKb: field('VmRSS'), threads: field('Threads') };
}

/** The median and the maximum of a list of numbers. */
export function summary(values) {
  const sorted = [...values].sort((a, b) => a - b);
  return { median: sorted[Math.floor(sorted.length / 2)], max: sorted.at(-1), p99: sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * 0.99))] };
}

/** CPU time (user + system) process `pid` has used so far, in seconds (from /proc/<pid>/stat). */
export function cpuSeconds(pid) {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // fields from the 3rd (state) on
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (USER_HZ 100)
}
