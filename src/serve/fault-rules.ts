/**
 * @module The faults file of `mailbox serve --faults FILE`: read, parsed and checked (core/faults.ts
 * owns the rules and the decision), held for the session host, and re-read on SIGHUP.
 * Rule 1: a bad file at start is a SetupError of one line naming the file and the problem (exit
 *         78); a bad file on SIGHUP is logged and the rules in force stay, counters and all.
 * Rule 2: every fault applied is logged, one line: rule, stage, action, client.
 * Rule 3: the HTTP API (PUT/DELETE /api/mailbox/v1/faults) replaces the rules in force, with
 *         fresh counters; SIGHUP goes back to the file (or to none without --faults).
 */
import { readFileSync } from 'node:fs';
import { FaultPlan, describeFaultAction, parseFaultRules, type FaultAction, type FaultStage } from '../core/faults.ts';
import { EXIT, SetupError } from '../exit-status.ts';
import type { Logger } from '../log.ts';

/** Reads and checks a faults file; throws SetupError (one line, exit 78) when it cannot be used. */
export function readFaultPlan(file: string): FaultPlan {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    const code = (error as { code?: string }).code;
    throw new SetupError(`--faults ${file}: ${code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : (error as Error).message}`, EXIT.config);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new SetupError(`--faults ${file}: not JSON: ${(error as Error).message.split('\n')[0]}`, EXIT.config);
  }
  const parsed = parseFaultRules(json);
  if (!parsed.ok) throw new SetupError(`--faults ${file}: ${parsed.why}`, EXIT.config);
  return new FaultPlan(parsed.rules);
}

/** The rules in force; the session host asks it at every stage of every session. */
export class FaultRules {
  #file: string | null;
  readonly #log: Logger;
  readonly #now: () => number;
  #plan: FaultPlan;
  /** The rules as given (the file's JSON or the API's body), for GET. */
  #source: unknown;

  /** With a null file, no rule is in force until the API sets some. */
  constructor(file: string | null, log: Logger, now: () => number) {
    this.#file = file;
    this.#log = log;
    this.#now = now;
    this.#plan = file === null ? new FaultPlan([]) : readFaultPlan(file);
    this.#source = file === null ? { rules: [] } : JSON.parse(readFileSync(file, 'utf8'));
  }

  get size(): number {
    return this.#plan.rules.length;
  }

  /** The rules in force as they were given. */
  get source(): unknown {
    return this.#source;
  }

  /** Replaces the rules in force (counters start again); the reason when `json` is not a faults document. */
  replace(json: unknown, by: string): string | null {
    const parsed = parseFaultRules(json);
    if (!parsed.ok) return parsed.why;
    this.#plan = new FaultPlan(parsed.rules);
    this.#source = json;
    this.#log.warn('faults-replaced', { rules: parsed.rules.length, by, note: parsed.rules.length > 0 ? 'scripted faults are in force (testing only)' : undefined });
    return null;
  }

  /**
   * SIGHUP: the file again (`file`, when the config file read again names one, or none), with
   * fresh counters; a bad file leaves the old rules, and the old file, in force.
   */
  reload(file: string | null = this.#file): void {
    if (file === null) {
      if (this.#file !== null) this.#log.info('faults-reloaded', { rules: 0, note: 'no faults file any more' });
      this.#file = null;
      this.#plan = new FaultPlan([]);
      this.#source = { rules: [] };
      return;
    }
    try {
      this.#plan = readFaultPlan(file);
      this.#source = JSON.parse(readFileSync(file, 'utf8'));
      this.#file = file;
      this.#log.info('faults-reloaded', { file, rules: this.#plan.rules.length });
    } catch (error) {
      this.#log.error('faults-reload-failed', { error: (error as Error).message, kept: `the ${this.#plan.rules.length} rules read before` });
    }
  }

  /** The session's question for one client: the action at `stage`, logged when there is one. */
  forClient(client: string): (stage: FaultStage, address: string | null) => FaultAction | null {
    return (stage, address) => {
      const decision = this.#plan.decide(stage, address, this.#now());
      if (decision === null) return null;
      this.#log.info('fault', {
        rule: decision.index,
        name: decision.rule.name,
        stage,
        address: address === null ? undefined : address === '' ? '<>' : address,
        action: describeFaultAction(decision.action),
        client,
      });
      return decision.action;
    };
  }
}
