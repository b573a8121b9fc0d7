// The README's "Differences from upstream" section is written from differences.json, the one
// machine-readable list of documented differences (the differential tests accept a difference
// only if it is listed there).
//   node tests/e2e/differential/readme.js --write   rewrite the section in README.md
//   node tests/e2e/differential/readme.js --check   exit 1 when README.md and the list disagree
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const LIST_FILE = path.join(HERE, 'differences.json');
export const README_FILE = path.resolve(HERE, '../../../README.md');
export const BEGIN = '<!-- differences:begin (generated from tests/e2e/differential/differences.json: ' +
  'edit the list, then run `node tests/e2e/differential/readme.js --write`) -->';
export const END = '<!-- differences:end -->';

/** gatehouse module → what it replaces; the section lists modules in this order. */
export const MODULES = {
  mod_auth_gatehouse_token: "jitsi-meet's `mod_auth_token`",
  mod_gatehouse_token_verification: "jitsi-meet's `mod_token_verification`",
  mod_token_security_ondemand: "jitsi-contrib's `mod_token_security_ondemand`",
  mod_token_lobby_bypass: "jitsi-contrib's `mod_token_lobby_bypass`",
  mod_token_moderation: "nvonahsen's `mod_token_moderation`",
  mod_auth_matrix_user_verification: "matrix-org's `mod_auth_matrix_user_verification`",
  mod_matrix_power_sync: "matrix-org's `mod_matrix_power_sync`",
  mod_gatehouse_wallet: 'the guild-gated jitsi-meet fork (checked in the browser)',
  mod_gatehouse_issuer: "ChatTheatre's Chat Admin Server",
};

const FIELDS = ['id', 'module', 'upstream', 'gatehouse', 'reason'];

/** Problems with the list's shape, as readable lines (empty when it is well formed). */
export function validate(list) {
  if (!Array.isArray(list)) return ['differences.json must be an array'];
  const problems = [];
  const seen = new Set();
  list.forEach((d, i) => {
    const at = `entry ${i} (${d?.id ?? 'no id'})`;
    for (const f of FIELDS) {
      if (typeof d?.[f] !== 'string' || d[f].trim() === '') problems.push(`${at}: '${f}' must be a non-empty string`);
    }
    const extra = Object.keys(d ?? {}).filter((k) => !FIELDS.includes(k));
    if (extra.length) problems.push(`${at}: unknown fields ${extra.join(', ')}`);
    if (typeof d?.id === 'string' && !/^[a-z0-9]+(-[a-z0-9]+)*$/.test(d.id)) problems.push(`${at}: id must be kebab-case`);
    if (seen.has(d?.id)) problems.push(`${at}: duplicate id`);
    seen.add(d?.id);
    if (typeof d?.module === 'string' && !(d.module in MODULES)) {
      problems.push(`${at}: module ${d.module} is not one of ${Object.keys(MODULES).join(', ')}`);
    }
  });
  return problems;
}

const sentence = (s) => (/[.!?]$/.test(s.trim()) ? s.trim() : `${s.trim()}.`);

/** The section's text between the markers. */
export function render(list) {
  const lines = [
    '',
    'Every deliberate difference from the modules gatehouse replaces, one entry per difference.',
    'The differential tests (`make test-differential`) run each upstream module and its gatehouse',
    'replacement side by side in a real Prosody, with the same clients and tokens; a scenario whose',
    'outcomes differ fails unless it names one of these entries.',
  ];
  for (const [module, replaces] of Object.entries(MODULES)) {
    const entries = list.filter((d) => d.module === module);
    if (!entries.length) continue;
    lines.push('', `**\`${module}\`** (replaces ${replaces}):`, '');
    for (const d of entries) {
      lines.push(`- \`${d.id}\`. Upstream: ${sentence(d.upstream)} gatehouse: ${sentence(d.gatehouse)} Why: ${sentence(d.reason)}`);
    }
  }
  lines.push('');
  return lines.join('\n');
}

/** README.md with the section replaced by `render(list)`. */
export function withSection(readme, list) {
  const begin = readme.indexOf(BEGIN);
  const end = readme.indexOf(END);
  if (begin < 0 || end < begin) throw new Error(`README.md lacks the markers ${BEGIN} … ${END}`);
  return readme.slice(0, begin + BEGIN.length) + render(list) + readme.slice(end);
}

export function readList() {
  return JSON.parse(fs.readFileSync(LIST_FILE, 'utf8'));
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const list = readList();
  const problems = validate(list);
  if (problems.length) {
    console.error(problems.join('\n'));
    process.exit(1);
  }
  const readme = fs.readFileSync(README_FILE, 'utf8');
  const wanted = withSection(readme, list);
  if (process.argv.includes('--write')) {
    if (wanted !== readme) fs.writeFileSync(README_FILE, wanted);
  } else if (wanted !== readme) {
    console.error('README.md\'s "Differences from upstream" does not match differences.json: ' +
      'run `node tests/e2e/differential/readme.js --write`');
    process.exit(1);
  }
}
