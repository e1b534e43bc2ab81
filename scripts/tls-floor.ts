/**
 * The floor of `npm run bench`'s TLS cells: the least an SMTP server on Bun can do. It answers
 * every command with a fixed reply, keeps nothing and parses nothing beyond lines and the end of
 * DATA, on one `Bun.listen` listener in clear and one with implicit TLS (Bun's native TLS). Driven
 * by tls-load like the real servers, it shows what TLS costs any Bun server on this machine, so
 * that mailbox's own TLS cost can be read against it. It offers no STARTTLS: Bun's listener cannot
 * start TLS on an open connection (BUN.md), which is why mailbox bridges to node:tls for that.
 *
 * usage: bash scripts/bun scripts/tls-floor.ts --cert FILE --key FILE --port N --tls-port N
 */
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: { cert: { type: 'string' }, key: { type: 'string' }, port: { type: 'string' }, 'tls-port': { type: 'string' } },
});
if (!values.cert || !values.key || !values.port || !values['tls-port']) {
  console.error('usage: tls-floor.ts --cert FILE --key FILE --port N --tls-port N');
  process.exit(64);
}

const GREETING = '220 floor ESMTP\r\n';
const EHLO = '250-floor\r\n250-PIPELINING\r\n250 8BITMIME\r\n';
const END_OF_DATA = '\r\n.\r\n';

interface Connection {
  /** Unprocessed input: a partial command line, or the tail of DATA that may hold the end. */
  pending: string;
  inData: boolean;
}

/** Replies to every complete command (and the end of DATA) in `text`, pipelined or not. */
function respond(socket: Bun.Socket<Connection>, text: string): void {
  const state = socket.data;
  let input = state.pending + text;
  let out = '';
  for (;;) {
    if (state.inData) {
      const end = input.indexOf(END_OF_DATA);
      if (end < 0) {
        // Keep enough to find an end marker split across reads.
        input = input.slice(-(END_OF_DATA.length - 1));
        break;
      }
      input = input.slice(end + END_OF_DATA.length);
      state.inData = false;
      out += '250 2.0.0 Ok\r\n';
      continue;
    }
    const eol = input.indexOf('\r\n');
    if (eol < 0) break;
    const verb = input.slice(0, 4).toUpperCase();
    input = input.slice(eol + 2);
    if (verb === 'EHLO') out += EHLO;
    else if (verb === 'DATA') {
      out += '354 End data with <CR><LF>.<CR><LF>\r\n';
      // A message may start with the end marker's trailing ".\r\n" right away.
      input = `\r\n${input}`;
      state.inData = true;
    } else if (verb === 'QUIT') {
      socket.end(`${out}221 2.0.0 Bye\r\n`);
      return;
    } else out += '250 2.0.0 Ok\r\n';
  }
  state.pending = input;
  if (out !== '') socket.write(out);
}

function handlers(tls: boolean): Bun.SocketHandler<Connection> {
  return {
    open(socket) {
      socket.data = { pending: '', inData: false };
      // On a TLS socket a write in open() is lost (BUN.md): the greeting waits for the handshake.
      if (!tls) socket.write(GREETING);
    },
    handshake(socket) {
      socket.write(GREETING);
    },
    data(socket, bytes) {
      respond(socket, bytes.toString('latin1'));
    },
    error() {},
  };
}

Bun.listen<Connection>({ hostname: '127.0.0.1', port: Number(values.port), socket: handlers(false) });
Bun.listen<Connection>({
  hostname: '127.0.0.1',
  port: Number(values['tls-port']),
  socket: handlers(true),
  tls: { cert: Bun.file(values.cert), key: Bun.file(values.key) },
});
