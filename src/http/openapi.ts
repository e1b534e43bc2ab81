/**
 * @module The OpenAPI 3.1 document of /api/mailbox/v1/ (served at /api/mailbox/v1/openapi.json).
 * Rule: it describes what mailbox-api.ts serves, route for route; a test compares the two lists.
 */

const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
const json = (schema: unknown, description: string) => ({ description, content: { 'application/json': { schema } } });
const error = (description: string) => json(ref('Error'), description);
const cursorParam = { name: 'after', in: 'query', schema: { type: 'string', pattern: '^[0-9]+$' }, description: 'Cursor: only messages committed after it. "0" (the default) is the beginning.' };
const queryParam = { name: 'query', in: 'query', schema: { type: 'string' }, description: 'Mailpit search (GET /api/v1/search), plus rcpt:, mailfrom: and inbox: for exact envelope addresses.' };
const rcptParam = { name: 'rcpt', in: 'query', schema: { type: 'array', items: { type: 'string' } }, style: 'form', explode: true, description: 'Exact envelope recipient; repeat for several (any of them matches).' };
const idParam = { name: 'id', in: 'path', required: true, schema: { type: 'string', pattern: '^[A-Za-z0-9]+$' } };
const addressParam = { name: 'address', in: 'path', required: true, schema: { type: 'string' }, description: 'An envelope recipient, local@domain (URL-encoded).' };

/** The routes the document describes, as "METHOD path": mailbox-api.ts serves each of them. */
export const DOCUMENTED_ROUTES = [
  'GET /cursor',
  'GET /wait',
  'GET /events',
  'GET /inboxes',
  'GET /inboxes/{address}/messages',
  'DELETE /inboxes/{address}/messages',
  'GET /message/{id}',
  'GET /message/{id}/session',
  'GET /message/{id}/deliveries',
  'GET /faults',
  'PUT /faults',
  'DELETE /faults',
  'GET /openapi.json',
] as const;

export function openApiDocument(version: string): Record<string, unknown> {
  return {
    openapi: '3.1.0',
    info: {
      title: 'mailbox API',
      version,
      description:
        "mailbox's own API, beside the Mailpit-compatible /api/v1/. Cursors follow the spool's commit order: a cursor taken before an action, then a wait after it, finds exactly the mail the action caused. Nothing here marks mail read. Errors are JSON {\"error\": …}.",
    },
    servers: [{ url: '/api/mailbox/v1' }],
    paths: {
      '/cursor': { get: { summary: "The current cursor and the server's time", responses: { 200: json(ref('Cursor'), 'The newest commit') } } },
      '/wait': {
        get: {
          summary: 'Wait for the first message after a cursor that matches',
          description: 'Answers as soon as a matching message is committed (at once if one already is). Take the next cursor from the answer to wait for the next one.',
          parameters: [
            cursorParam,
            queryParam,
            rcptParam,
            { name: 'inbox', in: 'query', schema: { type: 'string' }, description: 'Same as rcpt.' },
            { name: 'timeout', in: 'query', schema: { type: 'integer', minimum: 0, maximum: 300, default: 30 }, description: 'Seconds.' },
            { name: 'count', in: 'query', schema: { type: 'integer', minimum: 1, maximum: 100, default: 1 }, description: 'At most this many matches in one answer.' },
          ],
          responses: {
            200: json({ type: 'object', required: ['messages', 'cursor', 'messages_count'], properties: { messages: { type: 'array', items: ref('WaitMessage') }, cursor: { type: 'string' }, messages_count: { type: 'integer' } } }, 'Matches, oldest first'),
            400: error('A bad cursor or recipient'),
            404: json({ type: 'object', required: ['error', 'cursor'], properties: { error: { const: 'timeout' }, cursor: { type: 'string', description: 'Resume from here: nothing up to it matched.' }, waited_ms: { type: 'integer' } } }, 'Nothing matched in time'),
            503: error('Too many waits and streams are open'),
          },
        },
      },
      '/events': {
        get: {
          summary: 'A resumable Server-Sent Events stream of matching messages',
          description:
            'Replays every match after the cursor (or Last-Event-ID), then streams new ones: "event: new", "id: <cursor>", data {"Type":"new","Data":WaitMessage}. ' +
            'Live changes follow as they are journalled, without an id (a resume replays new messages only): "event: updated", data {"Type":"updated","Data":WaitMessage} when the read mark or the tags of a message the stream has passed change (only for messages its query and rcpt match); ' +
            '"event: deleted", data {"Type":"deleted","Data":{"IDs":[…]}} for every deletion (at most 1,000 ids an event), whatever the filter, since a deleted message matches nothing any more.',
          parameters: [cursorParam, queryParam, rcptParam, { name: 'Last-Event-ID', in: 'header', schema: { type: 'string' } }],
          responses: { 200: { description: 'The stream', content: { 'text/event-stream': { schema: { type: 'string' } } } }, 400: error('A bad cursor or recipient'), 503: error('Too many waits and streams are open') },
        },
      },
      '/inboxes': { get: { summary: 'Every envelope recipient, with its message count', responses: { 200: json({ type: 'array', items: ref('Inbox') }, 'Inboxes') } } },
      '/inboxes/{address}/messages': {
        get: {
          summary: "One recipient's messages, newest first (Mailpit's MessagesSummary)",
          parameters: [addressParam, queryParam, { name: 'start', in: 'query', schema: { type: 'integer', default: 0 } }, { name: 'limit', in: 'query', schema: { type: 'integer', default: 50, maximum: 5000 } }],
          responses: { 200: json({ type: 'object' }, 'MessagesSummary') },
        },
        delete: { summary: "Deletes the messages sent to this recipient", parameters: [addressParam], responses: { 200: json({ type: 'object', properties: { deleted: { type: 'integer' } } }, 'How many were deleted') } },
      },
      '/message/{id}': {
        get: {
          summary: "Mailpit's Message, not marked read, with its envelope, links and one-time codes",
          parameters: [idParam],
          responses: { 200: json(ref('Message'), 'The message'), 400: error('A bad id'), 404: error('No such message') },
        },
      },
      '/message/{id}/session': {
        get: {
          summary: 'The SMTP session that carried the message',
          parameters: [idParam, { name: 'format', in: 'query', schema: { enum: ['json', 'smtp'] }, description: 'smtp: the session as a spool segment, for mailbox replay.' }],
          responses: { 200: json(ref('Session'), 'The session (or, with format=smtp, application/octet-stream)'), 404: error('No such message') },
        },
      },
      '/message/{id}/deliveries': {
        get: {
          summary: "Where each relayed copy of the message stands: the relay queue's state of every recipient that is not local",
          parameters: [idParam],
          responses: { 200: json({ type: 'array', items: ref('Delivery') }, 'One entry per relayed recipient'), 400: error('A bad id'), 404: error('No such message, or serve does not relay') },
        },
      },
      '/faults': {
        get: { summary: 'The scripted fault rules in force (the --faults format)', responses: { 200: json(ref('Faults'), 'The rules') } },
        put: { summary: 'Replaces the rules in force (counters start again)', requestBody: { required: true, content: { 'application/json': { schema: ref('Faults') } } }, responses: { 200: json(ref('Faults'), 'The rules now in force'), 400: error('Not a faults document') } },
        delete: { summary: 'No rules in force', responses: { 200: json(ref('Faults'), 'The empty rules') } },
      },
      '/openapi.json': { get: { summary: 'This document', responses: { 200: json({ type: 'object' }, 'OpenAPI 3.1') } } },
    },
    components: {
      schemas: {
        Error: { type: 'object', required: ['error'], properties: { error: { type: 'string' } } },
        Cursor: { type: 'object', properties: { cursor: { type: 'string' }, time: { type: 'string', format: 'date-time' } } },
        Address: { type: 'object', properties: { Name: { type: 'string' }, Address: { type: 'string' } } },
        WaitMessage: {
          type: 'object',
          description: "Mailpit's MessageSummary plus the cursor of the message and its envelope.",
          properties: {
            ID: { type: 'string' },
            Subject: { type: 'string' },
            From: ref('Address'),
            To: { type: 'array', items: ref('Address') },
            Created: { type: 'string', format: 'date-time' },
            Read: { type: 'boolean' },
            Tags: { type: 'array', items: { type: 'string' } },
            Cursor: { type: 'string' },
            MailFrom: { type: 'string' },
            RcptTo: { type: 'array', items: { type: 'string' } },
          },
        },
        Inbox: { type: 'object', properties: { Address: { type: 'string' }, Total: { type: 'integer' }, Cursor: { type: 'string' } } },
        Message: {
          type: 'object',
          description: "Mailpit's Message plus Envelope, Links and Codes.",
          properties: {
            ID: { type: 'string' },
            Envelope: {
              type: 'object',
              properties: { MailFrom: { type: 'string' }, RcptTo: { type: 'array', items: { type: 'string' } }, AuthUser: { type: ['string', 'null'] }, ReceivedAt: { type: 'string' }, Cursor: { type: 'string' }, ClientAddress: { type: ['string', 'null'] }, Helo: { type: ['string', 'null'] }, TLS: { type: ['string', 'null'] } },
            },
            Links: { type: 'array', items: { type: 'object', properties: { URL: { type: 'string' }, Text: { type: 'string' } } } },
            Codes: { type: 'array', items: { type: 'string' }, description: 'One-time codes near words like code, OTP or verification, best first.' },
          },
        },
        Session: {
          type: 'object',
          properties: { ID: { type: 'string' }, ReceivedAt: { type: 'string' }, ClientAddress: { type: ['string', 'null'] }, Helo: { type: ['string', 'null'] }, TLS: { type: ['string', 'null'] }, AuthUser: { type: ['string', 'null'] }, MailFrom: { type: 'string' }, RcptTo: { type: 'array', items: { type: 'string' } }, Size: { type: 'integer' }, Replay: { type: 'string' } },
        },
        Delivery: {
          type: 'object',
          properties: {
            Rcpt: { type: 'string' },
            State: { enum: ['pending', 'deferred', 'held', 'delivered', 'bounced', 'deleted'] },
            Attempts: { type: ['integer', 'null'] },
            NextAttempt: { type: ['string', 'null'], format: 'date-time' },
            LastReply: { type: ['string', 'null'], description: 'The last reply (deferred, held) or the final one (delivered, bounced)' },
            At: { type: ['string', 'null'], format: 'date-time' },
          },
        },
        Faults: { type: 'object', properties: { rules: { type: 'array', items: { type: 'object' } } }, description: 'The format of serve --faults FILE (README, Scripted faults).' },
      },
    },
  };
}
