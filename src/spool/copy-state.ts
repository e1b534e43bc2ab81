/**
 * @module What the spool holds of each recipient's copy of a message, as the index tracks it.
 * Rule 1: a relayed recipient's copy has a transport state (delivery-state.ts); one held in a
 *         local mailbox has none ('local': no onward delivery, as its record's flags say). Either
 *         becomes 'removed' when a reader, retention or an operator removes it (a removal record,
 *         mailbox-state.ts).
 * Rule 2: removal is final: no later record changes a removed copy.
 */
import type { DeliveryState } from './delivery-state.ts';

export type CopyState = DeliveryState | { readonly kind: 'local' } | { readonly kind: 'removed'; readonly atMs: number };

/** A copy held in a local mailbox (catch-all and local domains): kept until removed. */
export const LOCAL_COPY: CopyState = Object.freeze({ kind: 'local' });

export function removedAt(atMs: number): CopyState {
  return { kind: 'removed', atMs };
}

export const isRemoved = (s: CopyState): boolean => s.kind === 'removed';

/** Delivered, bounced or removed: nothing more will happen to this copy. */
export function isSettled(s: CopyState): boolean {
  return s.kind === 'delivered' || s.kind === 'bounced' || s.kind === 'removed';
}

/** The copy's transport state, or null when it is held locally or removed. */
export function transportState(s: CopyState): DeliveryState | null {
  return s.kind === 'local' || s.kind === 'removed' ? null : s;
}
