/**
 * @module Sharing between index entries: equal envelopes (and their strings), recipient flags and
 * initial delivery states are held once, so a spool of many similar messages (a load test) does
 * not hold a parsed envelope per message.
 * Rule 1: what comes out equals what went in. Objects, flags and states are frozen, so a change
 *         cannot reach every sharer; envelope arrays are only typed readonly (JSC stores a frozen
 *         array sparsely, at several times the memory).
 * Rule 2: each table is a cache, not a registry: past its size it starts over, and what entries
 *         already hold stays theirs, so the tables never grow with the spool.
 */
import type { Mailbox } from '../core/address.ts';
import type { Parameter } from '../core/command.ts';
import type { Envelope } from '../core/envelope.ts';
import { LOCAL_COPY, type CopyState } from './copy-state.ts';
import { PENDING } from './delivery-state.ts';

const ENVELOPES_KEPT = 1024;
const STRINGS_KEPT = 4096;
const FLAGS_KEPT = 256;

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

function remember<V>(table: Map<string, V>, key: string, value: V, kept: number): void {
  if (table.size >= kept) table.clear();
  table.set(key, value);
}
