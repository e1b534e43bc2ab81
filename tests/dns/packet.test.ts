// The DNS codec against answers captured from dnsmasq 2.90 (compression pointers, null MX,
// NXDOMAIN) and against malformed input, which must be refused with a reason.
import { describe, expect, test } from 'bun:test';
import { decodeMessage, DnsFormatError, encodeQuery, formatIpv6, formatRecord, RR_TYPE } from '../../src/dns/packet.ts';

const hex = (s: string) => Uint8Array.from(s.match(/../g)!.map((b) => parseInt(b, 16)));

// `dig @dnsmasq two.test MX`: two MX, names compressed, the exchanges' A records as additionals.
const TWO_MX = hex('1234858000010002000000020374776f047465737400000f0001c00c000f00010000000000100014036d78320374776f047465737400c00c000f0001000000000010000a036d78310374776f047465737400c028000100010000000000047f000003c044000100010000000000047f000002');
const NULL_MX = hex('123485800001000100000000066e756c6c6d78047465737400000f0001c00c000f0001000000000003000000');
const NXDOMAIN = hex('123481830001000000000000046e6f7065047465737400000f0001');
const NODATA = hex('12348180000100000000000005616f6e6c79047465737400000f0001');

describe('encodeQuery', () => {
  test('one question, recursion desired, class IN', () => {
    expect(Buffer.from(encodeQuery(0x1234, 'two.test', RR_TYPE.MX)).toString('hex')).toBe('123401000001000000000000' + '0374776f04746573740000' + '0f0001');
  });
  test('a trailing dot is the same name', () => {
    expect(encodeQuery(1, 'two.test.', RR_TYPE.A)).toEqual(encodeQuery(1, 'two.test', RR_TYPE.A));
  });
  test('labels over 63 octets are refused', () => {
    expect(() => encodeQuery(1, `${'a'.repeat(64)}.test`, RR_TYPE.A)).toThrow(DnsFormatError);
  });
});

describe('decodeMessage', () => {
  test('MX answers with compressed names', () => {
    const m = decodeMessage(TWO_MX);
    expect(m).toMatchObject({ id: 0x1234, response: true, truncated: false, rcode: 0 });
    expect(m.questions).toEqual([{ name: 'two.test', typeCode: RR_TYPE.MX }]);
    expect(m.answers.map(formatRecord)).toEqual(['two.test. 0 IN MX 20 mx2.two.test.', 'two.test. 0 IN MX 10 mx1.two.test.']);
  });
  test('null MX (RFC 7505): preference 0, exchange "."', () => {
    const [record] = decodeMessage(NULL_MX).answers;
    expect(record.data).toEqual({ type: 'MX', preference: 0, exchange: '' });
    expect(formatRecord(record)).toBe('nullmx.test. 0 IN MX 0 .');
  });
  test('NXDOMAIN and NODATA differ in the rcode, not in the answers', () => {
    expect(decodeMessage(NXDOMAIN)).toMatchObject({ rcode: 3, answers: [] });
    expect(decodeMessage(NODATA)).toMatchObject({ rcode: 0, answers: [] });
  });
  test('malformed messages are refused with a reason', () => {
    expect(() => decodeMessage(new Uint8Array(5))).toThrow('shorter than its header');
    expect(() => decodeMessage(TWO_MX.subarray(0, 40))).toThrow(DnsFormatError);
    // A compression pointer to itself.
    const loop = hex('123481800001000000000000c00c000f0001');
    expect(() => decodeMessage(loop)).toThrow('compression pointer loop');
  });
  test('a truncated answer keeps the records that are whole', () => {
    const cut = TWO_MX.slice(0, 58);
    cut[2] |= 0x02;
    const m = decodeMessage(cut);
    expect(m.truncated).toBe(true);
    expect(m.answers.map(formatRecord)).toEqual(['two.test. 0 IN MX 20 mx2.two.test.']);
  });
});

test('IPv6 text form follows RFC 5952', () => {
  const v6 = (s: string) => formatIpv6(hex(s));
  expect(v6('20010db8000000000000000000000001')).toBe('2001:db8::1');
  expect(v6('00000000000000000000000000000001')).toBe('::1');
  expect(v6('20010db8000000010000000000000000')).toBe('2001:db8:0:1::');
  expect(v6('20010db8000100000001000000000001')).toBe('2001:db8:1:0:1::1');
  expect(v6('20010db8aaaabbbbccccddddeeeeffff')).toBe('2001:db8:aaaa:bbbb:cccc:dddd:eeee:ffff');
});
