/**
 * @module Scripted faults for `mailbox serve --faults FILE`: the rules (parsed and checked from the
 * file's JSON value) and the decision "at this stage, with this address, these counters → this
 * action". Serve is then a deterministic test double for senders: no randomness, only counters.
 * Rule 1: pure. The caller gives the time (for rate limits) and carries out the action; the
 *         server session learns only the action, never a file or a clock.
 * Rule 2: rules are tried in file order. Every rule whose stage and address match counts the
 *         event; the first one that fires decides, and the rules after it do not see the event.
 * Rule 3: a schedule is "times": N (the first N matches), "every": K (the Kth, 2Kth, …), or
 *         neither (always). A rate limit lets "limit" matches through per "windowMs", then answers
 *         421 or 451; its window starts at the first match and restarts at the first one past it.
 */
import { addressPattern } from './address-pattern.ts';
import { replies } from './replies.ts';
import type { Reply } from './reply.ts';

export const FAULT_STAGES = ['connect', 'ehlo', 'starttls', 'auth', 'mail', 'rcpt', 'data', 'end-of-data', 'bdat', 'quit'] as const;
export type FaultStage = (typeof FAULT_STAGES)[number];

/** What the session does instead of (or before) its normal handling. */
export type FaultAction =
  /** Answer this reply instead of the normal one; wait delayMs first. 421 also closes (RFC 5321 §3.8). */
  | { readonly kind: 'reply'; readonly reply: Reply; readonly delayMs: number }
  /** Wait, then handle the command as usual. */
  | { readonly kind: 'delay'; readonly delayMs: number }
  /** Close the connection without a word; at stage data after `afterBytes` bytes of the message. */
  | { readonly kind: 'drop'; readonly afterBytes: number; readonly delayMs: number }
  /** Answer nothing from here on, until the client leaves or the idle timeout closes the connection. */
  | { readonly kind: 'silence' };

export type FaultSchedule = { readonly kind: 'always' } | { readonly kind: 'first'; readonly n: number } | { readonly kind: 'every'; readonly k: number };

export interface FaultRule {
  /** The rule's "name", or "#N" (its 1-based place in the file). */
  readonly name: string;
  readonly stage: FaultStage;
  /** The pattern as written, for the log; null matches every address (and stages without one). */
  readonly address: string | null;
  readonly matcher: RegExp | null;
  readonly effect:
    | { readonly kind: 'action'; readonly action: FaultAction; readonly schedule: FaultSchedule }
    | { readonly kind: 'rate-limit'; readonly limit: number; readonly windowMs: number; readonly reply: Reply };
}

/** An action chosen by a rule, with what the log says about it. */
export interface FaultDecision {
  readonly rule: FaultRule;
  /** 1-based place of the rule in the file. */
  readonly index: number;
  readonly action: FaultAction;
}

export type ParsedFaults = { readonly ok: true; readonly rules: readonly FaultRule[] } | { readonly ok: false; readonly why: string };

const ADDRESS_STAGES: ReadonlySet<FaultStage> = new Set(['mail', 'rcpt']);
const RULE_KEYS = new Set(['name', 'stage', 'address', 'reply', 'delayMs', 'drop', 'silent', 'rateLimit', 'times', 'every']);
const REPLY_TEXT = /^([2-5]\d\d)(?: ([245]\.\d{1,3}\.\d{1,3}))?(?: (.*))?$/;
const MAX_DELAY_MS = 3_600_000;

class RuleProblem extends Error {}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function count(value: unknown, key: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new RuleProblem(`"${key}" must be a whole number from ${min}${max === Number.MAX_SAFE_INTEGER ? ' up' : ` to ${max}`}, not ${JSON.stringify(value)}`);
  }
  return value;
}

/** A reply as the file writes it: "450 4.2.0 text", or {"code": 450, "enhanced": "4.2.0", "text": "..."}. */
function parseReply(value: unknown): Reply {
  let code: number;
  let enhanced: string | undefined;
  let text: string | undefined;
  if (typeof value === 'string') {
    const m = REPLY_TEXT.exec(value.trim());
    if (!m) throw new RuleProblem(`"reply" ${JSON.stringify(value)} is not "CODE [X.Y.Z] [text]" with CODE 200-599 (example: "450 4.2.0 Try later")`);
    [code, enhanced, text] = [Number(m[1]), m[2], m[3]];
  } else if (isRecord(value)) {
    for (const key of Object.keys(value)) if (!['code', 'enhanced', 'text'].includes(key)) throw new RuleProblem(`"reply" has an unknown key "${key}" (use code, enhanced, text)`);
    code = count(value.code, 'reply.code', 200, 599);
    if (value.enhanced !== undefined && (typeof value.enhanced !== 'string' || !/^[245]\.\d{1,3}\.\d{1,3}$/.test(value.enhanced))) {
      throw new RuleProblem(`"reply.enhanced" must be an RFC 3463 code such as "4.2.0", not ${JSON.stringify(value.enhanced)}`);
    }
    if (value.text !== undefined && typeof value.text !== 'string') throw new RuleProblem('"reply.text" must be a string');
    enhanced = value.enhanced as string | undefined;
    text = value.text as string | undefined;
  } else {
    throw new RuleProblem('"reply" must be a string like "450 4.2.0 Try later" or an object {code, enhanced, text}');
  }
  if (code < 200 || code >= 600 || Math.floor(code / 100) === 3) throw new RuleProblem(`"reply" code ${code} must be 2xx, 4xx or 5xx`);
  // RFC 3463 §2: the class of the enhanced code is the first digit of the reply code.
  if (enhanced !== undefined && enhanced[0] !== String(code)[0]) throw new RuleProblem(`"reply" enhanced code ${enhanced} does not fit reply code ${code} (its class must be ${String(code)[0]})`);
  if (text !== undefined && /[\r\n]/.test(text)) throw new RuleProblem('"reply" text must be one line');
  return text === undefined || text.trim() === '' ? (enhanced === undefined ? replies.faultDefault(code) : replies.scripted(code, enhanced, 'Scripted fault (serve --faults)')) : replies.scripted(code, enhanced, text);
}

function parseSchedule(rule: Record<string, unknown>): FaultSchedule {
  if (rule.times !== undefined && rule.every !== undefined) throw new RuleProblem('"times" and "every" exclude each other');
  if (rule.times !== undefined) return { kind: 'first', n: count(rule.times, 'times', 1) };
  if (rule.every !== undefined) return { kind: 'every', k: count(rule.every, 'every', 1) };
  return { kind: 'always' };
}

function parseRule(value: unknown, index: number): FaultRule {
  if (!isRecord(value)) throw new RuleProblem('must be an object such as {"stage": "rcpt", "reply": "450 4.2.0 Try later"}');
  for (const key of Object.keys(value)) if (!RULE_KEYS.has(key)) throw new RuleProblem(`unknown key "${key}" (use ${[...RULE_KEYS].join(', ')})`);
  if (value.name !== undefined && (typeof value.name !== 'string' || value.name.trim() === '')) throw new RuleProblem('"name" must be a non-empty string');
  const name = typeof value.name === 'string' ? value.name : `#${index}`;
  const stage = value.stage;
  if (typeof stage !== 'string' || !(FAULT_STAGES as readonly string[]).includes(stage)) {
    throw new RuleProblem(`"stage" must be one of ${FAULT_STAGES.join(', ')}, not ${JSON.stringify(stage)}`);
  }
  const faultStage = stage as FaultStage;
  let address: string | null = null;
  if (value.address !== undefined) {
    if (!ADDRESS_STAGES.has(faultStage)) throw new RuleProblem(`"address" applies only to stages mail and rcpt, not ${stage}`);
    if (typeof value.address !== 'string' || value.address.trim() === '') throw new RuleProblem('"address" must be a pattern such as "*", "bob@*", "@example.org" or "<>"');
    address = value.address.trim();
  }
  const actions = ['reply', 'drop', 'silent', 'rateLimit'].filter((k) => value[k] !== undefined);
  if (actions.length > 1) throw new RuleProblem(`give one action, not ${actions.map((a) => `"${a}"`).join(' and ')}`);
  if (actions.length === 0 && value.delayMs === undefined) throw new RuleProblem('needs an action: "reply", "delayMs", "drop", "silent" or "rateLimit"');
  const delayMs = value.delayMs === undefined ? 0 : count(value.delayMs, 'delayMs', 0, MAX_DELAY_MS);
  const base = { name, stage: faultStage, address, matcher: address === null ? null : addressPattern(address) };

  if (value.rateLimit !== undefined) {
    const r = value.rateLimit;
    if (!isRecord(r)) throw new RuleProblem('"rateLimit" must be {"limit": N, "windowMs": MS, "code": 421 or 451}');
    for (const key of Object.keys(r)) if (!['limit', 'windowMs', 'code'].includes(key)) throw new RuleProblem(`"rateLimit" has an unknown key "${key}" (use limit, windowMs, code)`);
    if (value.delayMs !== undefined || value.times !== undefined || value.every !== undefined) throw new RuleProblem('"rateLimit" takes no "delayMs", "times" or "every"');
    const code = r.code === undefined ? 451 : r.code;
    if (code !== 421 && code !== 451) throw new RuleProblem(`"rateLimit.code" must be 421 or 451, not ${JSON.stringify(code)}`);
    return {
      ...base,
      effect: { kind: 'rate-limit', limit: count(r.limit, 'rateLimit.limit', 0), windowMs: count(r.windowMs, 'rateLimit.windowMs', 1), reply: replies.faultRateLimited(code) },
    };
  }
  const schedule = parseSchedule(value);
  let action: FaultAction;
  if (value.silent !== undefined) {
    if (value.silent !== true) throw new RuleProblem('"silent" must be true');
    if (value.delayMs !== undefined) throw new RuleProblem('"silent" takes no "delayMs": it never answers');
    action = { kind: 'silence' };
  } else if (value.drop !== undefined) {
    let afterBytes = 0;
    if (isRecord(value.drop)) {
      for (const key of Object.keys(value.drop)) if (key !== 'afterBytes') throw new RuleProblem(`"drop" has an unknown key "${key}" (use afterBytes)`);
      if (faultStage !== 'data') throw new RuleProblem('"drop.afterBytes" applies only to stage data');
      afterBytes = count(value.drop.afterBytes, 'drop.afterBytes', 0);
    } else if (value.drop !== true) {
      throw new RuleProblem('"drop" must be true or {"afterBytes": N} (stage data)');
    }
    action = { kind: 'drop', afterBytes, delayMs };
  } else if (value.reply !== undefined) {
    action = { kind: 'reply', reply: parseReply(value.reply), delayMs };
  } else {
    action = { kind: 'delay', delayMs };
  }
  return { ...base, effect: { kind: 'action', action, schedule } };
}

/** The rules of a faults file, from its JSON value: {"rules": [...]} or the array itself. */
export function parseFaultRules(json: unknown): ParsedFaults {
  const list = Array.isArray(json) ? json : isRecord(json) ? json.rules : undefined;
  if (isRecord(json)) {
    for (const key of Object.keys(json)) if (key !== 'rules') return { ok: false, why: `unknown key "${key}" at the top (use "rules")` };
  }
  if (!Array.isArray(list)) return { ok: false, why: 'expected {"rules": [...]} or an array of rules' };
  const rules: FaultRule[] = [];
  for (let i = 0; i < list.length; i++) {
    try {
      rules.push(parseRule(list[i], i + 1));
    } catch (error) {
      if (!(error instanceof RuleProblem)) throw error;
      const named = isRecord(list[i]) && typeof list[i].name === 'string' ? ` (${JSON.stringify(list[i].name)})` : '';
      return { ok: false, why: `rule ${i + 1}${named}: ${error.message}` };
    }
  }
  return { ok: true, rules };
}

/** A rule's counters: matches so far, and the current rate-limit window. */
interface Counter {
  matches: number;
  windowStart: number;
  inWindow: number;
}

/** The rules in force and their counters; one per server, shared by every connection. */
export class FaultPlan {
  readonly rules: readonly FaultRule[];
  readonly #counters: Counter[];

  constructor(rules: readonly FaultRule[]) {
    this.rules = rules;
    this.#counters = rules.map(() => ({ matches: 0, windowStart: 0, inWindow: 0 }));
  }

  /**
   * The action for an event at `stage` (with `address` for mail and rcpt: "local@domain", or ""
   * for the null sender), or null when no rule fires. Counts the event in every rule it reaches.
   */
  decide(stage: FaultStage, address: string | null, now: number): FaultDecision | null {
    for (let i = 0; i < this.rules.length; i++) {
      const rule = this.rules[i];
      if (rule.stage !== stage) continue;
      if (rule.matcher !== null && (address === null || !rule.matcher.test(address))) continue;
      const counter = this.#counters[i];
      counter.matches++;
      const { effect } = rule;
      if (effect.kind === 'rate-limit') {
        if (counter.inWindow === 0 || now >= counter.windowStart + effect.windowMs) {
          counter.windowStart = now;
          counter.inWindow = 0;
        }
        counter.inWindow++;
        if (counter.inWindow > effect.limit) return { rule, index: i + 1, action: { kind: 'reply', reply: effect.reply, delayMs: 0 } };
        continue;
      }
      const fires =
        effect.schedule.kind === 'always' ||
        (effect.schedule.kind === 'first' && counter.matches <= effect.schedule.n) ||
        (effect.schedule.kind === 'every' && counter.matches % effect.schedule.k === 0);
      if (fires) return { rule, index: i + 1, action: effect.action };
    }
    return null;
  }
}

/** How the log names an action: "reply 450 4.2.0", "delay 500ms", "drop after 100 bytes", "silence". */
export function describeFaultAction(action: FaultAction): string {
  const delay = 'delayMs' in action && action.delayMs > 0 && action.kind !== 'delay' ? ` after ${action.delayMs}ms` : '';
  switch (action.kind) {
    case 'reply':
      return `reply ${action.reply.code}${action.reply.enhanced ? ` ${action.reply.enhanced}` : ''}${delay}`;
    case 'delay':
      return `delay ${action.delayMs}ms`;
    case 'drop':
      return action.afterBytes > 0 ? `drop after ${action.afterBytes} bytes${delay}` : `drop${delay}`;
    case 'silence':
      return 'silence';
    default: {
      const never: never = action;
      return never;
    }
  }
}
