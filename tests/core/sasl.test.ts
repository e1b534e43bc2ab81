// SASL for SMTP AUTH (core/sasl.ts), both sides: mechanism choice, responses, and the server's
// reading of responses (RFC 4954 §4, RFC 4616, RFC 2195, RFC 7628).
import { describe, expect, test } from 'bun:test';
import { createHmac } from 'node:crypto';
import { LOGIN_PROMPTS, challengeResponse, chooseMechanism, decodeSaslText, initialResponse, parsePlainMessage, type ClientAuth } from '../../src/core/sasl.ts';

const password: ClientAuth = { username: 'alice', secret: 's3cret', secretKind: 'password' };
const token: ClientAuth = { username: 'alice@example.org', secret: 'ya29.t', secretKind: 'token', host: 'mx.test', port: 587 };
const context = { offered: ['plain', 'LOGIN', 'CRAM-MD5', 'XOAUTH2', 'OAUTHBEARER'], tls: true, startTlsOffered: false, cramMd5: true };
const b64 = (text: string) => Buffer.from(text).toString('base64');

describe('client', () => {
  test('choice: PLAIN over TLS, CRAM-MD5 in clear, OAUTHBEARER for a token; reasons when none fits', () => {
    expect(chooseMechanism(password, context)).toEqual({ mechanism: 'PLAIN' });
    expect(chooseMechanism(password, { ...context, tls: false })).toEqual({ mechanism: 'CRAM-MD5' });
    expect(chooseMechanism(password, { ...context, tls: false, cramMd5: false })).toEqual({ mechanism: 'PLAIN' });
    expect(chooseMechanism(token, context)).toEqual({ mechanism: 'OAUTHBEARER' });
    expect(chooseMechanism(password, { ...context, offered: [], tls: false, startTlsOffered: true })).toEqual({ why: 'the server does not offer AUTH before TLS; it may after STARTTLS (--tls starttls)' });
    expect(chooseMechanism({ ...password, mechanism: 'XOAUTH2' }, context)).toEqual({ why: 'XOAUTH2 needs a token, and a password was given' });
    expect(chooseMechanism(password, { ...context, offered: ['XOAUTH2'] })).toEqual({ why: 'the server offers AUTH XOAUTH2, none of which takes a password' });
  });

  test('initial responses (RFC 4616 §2, RFC 7628 §3.1) and challenge responses', () => {
    expect(initialResponse(password, 'PLAIN')).toBe(b64('\0alice\0s3cret'));
    expect(initialResponse(token, 'OAUTHBEARER')).toBe(b64('n,a=alice@example.org,\x01host=mx.test\x01port=587\x01auth=Bearer ya29.t\x01\x01'));
    expect(initialResponse(password, 'LOGIN')).toBeNull();
    expect([0, 1, 2].map((step) => challengeResponse(password, 'LOGIN', step, LOGIN_PROMPTS.username, undefined).response)).toEqual([b64('alice'), b64('s3cret'), null]);
    const hmac = (key: Uint8Array, data: Uint8Array) => new Uint8Array(createHmac('md5', key).update(data).digest());
    const challenge = '<1896.697170952@postoffice.reston.mci.net>';
    // RFC 2195 §2's example digest for the key "tanstaaftanstaaf".
    const cram = challengeResponse({ ...password, username: 'tim', secret: 'tanstaaftanstaaf' }, 'CRAM-MD5', 0, b64(challenge), hmac);
    expect(Buffer.from(cram.response!, 'base64').toString()).toBe('tim b913a602c7eda7a495b4e6e7334d3890');
    expect(challengeResponse(token, 'OAUTHBEARER', 0, b64('{"status":"invalid_token"}'), undefined)).toEqual({ response: 'AQ==', note: 'OAUTHBEARER error status: {"status":"invalid_token"}' });
  });
});

describe('server', () => {
  test('strict base64 of UTF-8, "=" alone empty; PLAIN has three fields and a user', () => {
    expect([decodeSaslText('='), decodeSaslText(b64('jörg')), decodeSaslText('abc'), decodeSaslText('a b=')]).toEqual(['', 'jörg', null, null]);
    expect(parsePlainMessage('\0alice\0pw')).toEqual({ authzid: '', authcid: 'alice', password: 'pw' });
    expect(parsePlainMessage('admin\0alice\0pw')).toEqual({ authzid: 'admin', authcid: 'alice', password: 'pw' });
    expect([parsePlainMessage('\0\0pw'), parsePlainMessage('alice\0pw')]).toEqual([null, null]);
    expect(LOGIN_PROMPTS).toEqual({ username: 'VXNlcm5hbWU6', password: 'UGFzc3dvcmQ6' });
  });
});
