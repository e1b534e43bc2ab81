// The OpenAPI document names every route of /api/mailbox/v1/ and nothing else.
import { expect, test } from 'bun:test';
import { mailboxRoutes, PREFIX } from '../../src/http/mailbox-api.ts';
import { WaitRegistry } from '../../src/http/mail-wait.ts';
import { DOCUMENTED_ROUTES, openApiDocument } from '../../src/http/openapi.ts';
import { TestMail } from './test-mail.ts';

test('documented routes = served routes, and the document lists them', () => {
  const mail = new TestMail();
  try {
    const routes = mailboxRoutes({ mail, now: Date.now, waits: new WaitRegistry(mail, 1), session: async () => null, faults: { source: {}, replace: () => null }, version: 't' });
    const served = routes
      .filter((r) => !r.path.endsWith('/*'))
      .map((r) => `${r.method} ${r.path.slice(PREFIX.length).replace(/:([a-z]+)/g, '{$1}')}`)
      .sort();
    expect(served).toEqual([...DOCUMENTED_ROUTES].sort());
    const doc = openApiDocument('t') as { paths: Record<string, Record<string, unknown>> };
    const inDoc = Object.entries(doc.paths).flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`)).sort();
    expect(inDoc).toEqual([...DOCUMENTED_ROUTES].sort());
  } finally {
    mail.close();
  }
});
