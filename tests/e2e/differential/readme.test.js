// The one list of documented differences (differences.json) is well formed, the README's
// "Differences from upstream" section is exactly what it renders, and no other part of the
// README keeps its own list of differences.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';

import { readList, validate, withSection, README_FILE, BEGIN, END } from './readme.js';

test('differences.json is well formed (fields, kebab-case unique ids, known modules)', () => {
  assert.deepEqual(validate(readList()), []);
});

test("README's differences section is generated from differences.json", () => {
  const readme = fs.readFileSync(README_FILE, 'utf8');
  assert.ok(readme === withSection(readme, readList()),
    'README.md and differences.json disagree: run `node tests/e2e/differential/readme.js --write`');
});

test('the README lists differences only in the generated section', () => {
  const readme = fs.readFileSync(README_FILE, 'utf8');
  const outside = readme.slice(0, readme.indexOf(BEGIN)) + readme.slice(readme.indexOf(END));
  const lists = outside.split('\n').filter((l) => /^\*\*(Differences from upstream|How this differs)\*\*/.test(l)
    && !l.includes('(#differences-from-upstream)'));
  assert.deepEqual(lists, [], 'put these differences into differences.json instead');
});
