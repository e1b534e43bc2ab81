/**
 * @module A counting semaphore: at most `limit` holders at once, served in arrival order. Used
 * for the cap on simultaneous SMTP connections across all domains of a batch.
 */
export class Semaphore {
  readonly #limit: number;
  readonly #waiting: (() => void)[] = [];
  #held = 0;

  constructor(limit: number) {
    this.#limit = Math.max(1, limit);
  }

  async acquire(): Promise<void> {
    if (this.#held < this.#limit) {
      this.#held++;
      return;
    }
    // The releaser hands its slot straight to the next waiter, so #held does not change.
    await new Promise<void>((resolve) => this.#waiting.push(resolve));
  }

  release(): void {
    const next = this.#waiting.shift();
    if (next !== undefined) next();
    else this.#held--;
  }
}
