/**
 * @module STORE (RFC 3501 §6.4.6): its data item ("+FLAGS.SILENT" …) and flag list read from the
 * command's arguments, and the change applied to a message's flags.
 * Rule: \Recent is the server's (RFC 3501 §2.3.2) and is never set or cleared by STORE; flags
 *       compare case-insensitively and keep the spelling they were first stored with.
 */
import { isValidFlag } from './format.ts';
import type { ImapValue } from './parser.ts';

export type StoreMode = 'set' | 'add' | 'remove';

export interface StoreAction {
  readonly mode: StoreMode;
  /** ".SILENT": no untagged FETCH for the change (RFC 3501 §6.4.6). */
  readonly silent: boolean;
  readonly flags: readonly string[];
}

export type StoreRequest = { readonly ok: true; readonly action: StoreAction } | { readonly ok: false; readonly why: string };

const MODES: Record<string, StoreMode> = { FLAGS: 'set', '+FLAGS': 'add', '-FLAGS': 'remove' };

/** The system flags in the spelling RFC 3501 §2.3.2 gives them. */
const SYSTEM_FLAGS = ['\\Seen', '\\Answered', '\\Flagged', '\\Deleted', '\\Draft'] as const;

function canonical(flag: string): string {
  return SYSTEM_FLAGS.find((f) => f.toLowerCase() === flag.toLowerCase()) ?? flag;
}

/**
 * Reads the arguments of STORE after the sequence set: store-att-flags = (["+" / "-"] "FLAGS"
 * [".SILENT"]) SP (flag-list / (flag *(SP flag))) (RFC 3501 §9).
 */
export function parseStoreAction(args: readonly ImapValue[]): StoreRequest {
  const [item, ...rest] = args;
  if (item?.kind !== 'atom') return { ok: false, why: 'STORE needs FLAGS, +FLAGS or -FLAGS' };
  const name = item.value.toUpperCase();
  const silent = name.endsWith('.SILENT');
  const mode = MODES[silent ? name.slice(0, -'.SILENT'.length) : name];
  if (mode === undefined) return { ok: false, why: `"${item.value}" is not FLAGS, +FLAGS or -FLAGS` };
  const values = rest.length === 1 && rest[0].kind === 'list' ? rest[0].items : rest;
  if (rest.length === 0) return { ok: false, why: `${name} needs a flag list` };
  const flags: string[] = [];
  for (const v of values) {
    if (v.kind !== 'atom') return { ok: false, why: 'a flag is an atom like \\Seen or $Label' };
    // RFC 3501 §2.3.2: \Recent cannot be changed by STORE; other backslash flags do not exist.
    if (v.value.toLowerCase() === '\\recent') return { ok: false, why: '\\Recent cannot be stored' };
    if (!isValidFlag(v.value)) return { ok: false, why: `"${v.value}" is not a flag` };
    const flag = canonical(v.value);
    if (!flags.some((f) => f.toLowerCase() === flag.toLowerCase())) flags.push(flag);
  }
  return { ok: true, action: { mode, silent, flags } };
}

/** The flags after the action, in a stable order: the old ones first, then the added ones. */
export function applyStore(current: readonly string[], action: StoreAction): string[] {
  const has = (list: readonly string[], flag: string) => list.some((f) => f.toLowerCase() === flag.toLowerCase());
  switch (action.mode) {
    case 'set':
      return [...action.flags];
    case 'add':
      return [...current, ...action.flags.filter((f) => !has(current, f))];
    case 'remove':
      return current.filter((f) => !has(action.flags, f));
    default: {
      const never: never = action.mode;
      return never;
    }
  }
}
