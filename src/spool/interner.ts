/**
 * @module Sharing between index entries: equal envelopes (and their strings), recipient flags,
 * initial delivery states and the states records change them to are held once, so a spool of many
 * similar messages (a load test, a queue deferred at once for one dead destination) does not hold
 * a parsed envelope, a states array and a state with its reply per message.
 * Rule 1: what comes out equals what went in. Objects, flags and states are frozen, so a change
 *         cannot reach every sharer; envelope and states arrays are only typed readonly (JSC
 *         stores a frozen array sparsely, at several times the memory).
 * Rule 2: each table is a cache, not a registry: past its size it starts over, and what entries
 *         already hold stays theirs, so the tables never grow with the spool.
 */
import type { Mailbox } from '../core/address.ts';
import type { Parameter } from '../core/command.ts';
import type { Envelope } from '../core/envelope.ts';
import type { Reply } from '../core/reply.ts';
import { LOCAL_COPY, type CopyState } from './copy-state.ts';
import { PENDING } from './delivery-state.ts';

const ENVELOPES_KEPT = 1024;
const STRINGS_KEPT = 4096;
const FLAGS_KEPT = 256;
const STATES_KEPT = 1024;

const NO_PARAMS: readonly Parameter[] = Object.freeze([]);

/** Per-recipient local flags and the copy states they start from ('local' or 'pending'). */
export interface InitialFlags {
  readonly local: readonly boolean[];
  readonly states: readonly CopyState[];
}

export class Interner {
  readonly #envelopes = new Map<string, Envelope>();
  readonly #strings = new Map<string, string>();
  readonly #flags = new Map<string, InitialFlags>();
  /** Copy states and arrays of them, by stateKey() (arrays: their states' keys, each after its length). */
  readonly #states = new Map<string, CopyState>();
  readonly #stateLists = new Map<string, readonly CopyState[]>();

  /** An envelope equal to `envelope`, the same object for every equal one while it is cached. */
  envelope(envelope: Envelope): Envelope {
    // Every field is a string, boolean, integer or null, so equal JSON means equal envelopes.
    const key = JSON.stringify(envelope);
    let shared = this.#envelopes.get(key);
    if (shared === undefined) {
      shared = this.#copy(envelope);
      remember(this.#envelopes, key, shared, ENVELOPES_KEPT);
    }
    return shared;
  }

  /** Flags equal to `local`, with the initial states they give, shared between equal ones. */
  flags(local: readonly boolean[]): InitialFlags {
    let key = '';
    for (const l of local) key += l ? '1' : '0';
    let shared = this.#flags.get(key);
    if (shared === undefined) {
      shared = Object.freeze({
        local: Object.freeze([...local]),
        states: Object.freeze(local.map((l) => (l ? LOCAL_COPY : PENDING))),
      });
      remember(this.#flags, key, shared, FLAGS_KEPT);
    }
    return shared;
  }

  /** States equal to `states`, each state and the array the same objects for every equal one while cached. */
  states(states: readonly CopyState[]): readonly CopyState[] {
    let key = '';
    const shared: CopyState[] = [];
    for (const state of states) {
      const one = stateKey(state);
      let kept = this.#states.get(one);
      if (kept === undefined) {
        kept = Object.isFrozen(state) ? state : copyState(state);
        remember(this.#states, one, kept, STATES_KEPT);
      }
      shared.push(kept);
      // Each key with its length first: a reply's lines (which a remote server chooses) can never
      // make two different arrays read as one.
      key += `${one.length}:${one}`;
    }
    const list = this.#stateLists.get(key);
    if (list !== undefined) return list;
    remember(this.#stateLists, key, shared, STATES_KEPT);
    return shared;
  }

  #copy(envelope: Envelope): Envelope {
    return Object.freeze({
      sender: envelope.sender === null ? null : this.#mailbox(envelope.sender),
      mailParams: this.#params(envelope.mailParams),
      recipients: envelope.recipients.map((r) =>
        Object.freeze({ mailbox: this.#mailbox(r.mailbox), local: r.local, params: this.#params(r.params) }),
      ),
      utf8: envelope.utf8,
      body: envelope.body,
      declaredSize: envelope.declaredSize,
      authUser: envelope.authUser === null ? null : this.#string(envelope.authUser),
    });
  }

  #mailbox(mailbox: Mailbox): Mailbox {
    return Object.freeze({ local: this.#string(mailbox.local), domain: this.#string(mailbox.domain) });
  }

  #params(params: readonly Parameter[]): readonly Parameter[] {
    if (params.length === 0) return NO_PARAMS;
    return params.map((p) => Object.freeze({ name: this.#string(p.name), value: p.value === null ? null : this.#string(p.value) }));
  }

  #string(s: string): string {
    const shared = this.#strings.get(s);
    if (shared !== undefined) return shared;
    remember(this.#strings, s, s, STRINGS_KEPT);
    return s;
  }
}

/**
 * A key equal for equal states, with every field of each kind (and of its reply); JSON for any
 * other. No part but a reply's lines holds a space or a line break, and they come last.
 */
function stateKey(s: CopyState): string {
  switch (s.kind) {
    case 'pending':
    case 'local':
      return s.kind;
    case 'removed':
      return `removed ${s.atMs}`;
    case 'delivered':
      return `delivered ${s.atMs} ${s.reply === undefined ? '-' : replyKey(s.reply)}`;
    case 'bounced':
      return `bounced ${s.atMs} ${replyKey(s.reply)}`;
    case 'deferred':
      return `deferred ${s.attempts} ${s.nextAttemptMs} ${s.warned === true} ${replyKey(s.lastReply)}`;
    case 'held':
      return `held ${s.atMs} ${s.attempts} ${s.warned === true} ${s.lastReply === undefined ? '-' : replyKey(s.lastReply)}`;
    default:
      return JSON.stringify(s);
  }
}

function replyKey(r: Reply): string {
  return `${r.code} ${r.enhanced ?? '-'} ${r.blame ?? '-'} ${r.lines.join('\n')}`;
}

/** A frozen copy of a state, and of its reply (the lines are shared, typed readonly as Rule 1 says). */
function copyState(state: CopyState): CopyState {
  if ('reply' in state && state.reply !== undefined) return Object.freeze({ ...state, reply: Object.freeze({ ...state.reply }) });
  if ('lastReply' in state && state.lastReply !== undefined) return Object.freeze({ ...state, lastReply: Object.freeze({ ...state.lastReply }) });
  return Object.freeze({ ...state });
}

function remember<V>(table: Map<string, V>, key: string, value: V, kept: number): void {
  if (table.size >= kept) table.clear();
  table.set(key, value);
}
