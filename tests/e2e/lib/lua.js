// Renders JavaScript values as Lua source for a generated prosody.cfg.lua.
//
// Prosody's config file is Lua, so option values must be valid Lua literals. We render
// them ourselves (rather than building strings in each test) so a test can say
// `{ app_id: "x", asap_accepted_issuers: ["a", "b"], allow_empty_token: false }`
// and never worry about quoting.

/** Marks a string as raw Lua, inserted verbatim (escape hatch, e.g. `lua('os.getenv("X")')`). */
export function lua(source) {
  return { __lua: String(source) };
}

const IDENT = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** A Lua string literal. Bytes >= 0x80 pass through (Lua strings are byte strings, the file is UTF-8). */
export function luaString(s) {
  let out = '"';
  for (const ch of String(s)) {
    const c = ch.codePointAt(0);
    if (ch === '"') out += '\\"';
    else if (ch === '\\') out += '\\\\';
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (ch === '\t') out += '\\t';
    // Other control characters as decimal escapes; three digits so a following digit
    // is never absorbed into the escape.
    else if (c < 0x20 || c === 0x7f) out += '\\' + String(c).padStart(3, '0');
    else out += ch;
  }
  return out + '"';
}

/** Renders a JS value (string, number, boolean, array, Set, plain object, lua()) as a Lua expression. */
export function luaValue(v, indent = '') {
  if (v === null || v === undefined) return 'nil';
  if (typeof v === 'string') return luaString(v);
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) throw new TypeError(`cannot render ${v} as a Lua number`);
    return String(v);
  }
  if (typeof v === 'bigint') return v.toString();
  if (typeof v === 'object' && typeof v.__lua === 'string') return v.__lua;
  const inner = indent + '  ';
  if (Array.isArray(v) || v instanceof Set) {
    // Prosody reads both lists and sets (get_option_set / get_option_array) from a Lua sequence.
    const items = [...v].map((x) => luaValue(x, inner));
    return items.length === 0 ? '{}' : `{ ${items.join(', ')} }`;
  }
  if (typeof v === 'object') {
    const entries = Object.entries(v).filter(([, x]) => x !== undefined);
    if (entries.length === 0) return '{}';
    const lines = entries.map(([k, x]) => `${inner}${luaKey(k)} = ${luaValue(x, inner)};`);
    return `{\n${lines.join('\n')}\n${indent}}`;
  }
  throw new TypeError(`cannot render ${typeof v} as Lua`);
}

function luaKey(k) {
  return IDENT.test(k) ? k : `[${luaString(k)}]`;
}

/** `name = value` lines for a config section; option names must be plain identifiers. */
export function luaOptions(options, indent = '') {
  const lines = [];
  for (const [name, value] of Object.entries(options)) {
    if (value === undefined) continue;
    if (!IDENT.test(name)) throw new TypeError(`not a Prosody option name: ${JSON.stringify(name)}`);
    lines.push(`${indent}${name} = ${luaValue(value, indent)}`);
  }
  return lines.join('\n');
}
