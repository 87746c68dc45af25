import assert from 'node:assert/strict'
import {connect} from 'node:net'
import {after, before, describe, test} from 'node:test'

import {ERRORS, isErrorCode} from '../src/lib/errors.js'
import {TestCluster} from './helpers/cluster.js'

interface RawAnswer {
  status: number
  headers: Record<string, string>
  body: {error: string; message: string}
}

/**
 * Sends bytes as they are (like `curl --path-as-is`, or worse) and reads the one answer. `then`
 * runs once the head is written, to send a body in pieces or cut the request short.
 */
async function raw(url: string, head: string, then?: (socket: ReturnType<typeof connect>) => void): Promise<RawAnswer | undefined> {
  const {hostname, port} = new URL(url)
  const socket = connect(Number(port), hostname)
  const chunks: Buffer[] = []
  socket.on('data', (chunk: Buffer) => chunks.push(chunk))
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve)
    socket.once('error', reject)
  })
  // The server may close while we still write (a body it refused): that is its answer, not a failure.
  socket.on('error', () => {})
  socket.write(head)
  then?.(socket)
  await new Promise((resolve) => socket.once('close', resolve))
  const all = Buffer.concat(chunks).toString('utf8')
  if (all === '') return undefined
  // The last answer on the connection (earlier ones answered earlier requests).
  const text = all.slice(all.lastIndexOf('HTTP/1.1 '))
  const [top, ...rest] = text.split('\r\n\r\n')
  const [statusLine, ...headerLines] = top!.split('\r\n')
  const headers = Object.fromEntries(headerLines.map((line) => [line.slice(0, line.indexOf(':')).toLowerCase(), line.slice(line.indexOf(':') + 1).trim()]))
  return {status: Number(statusLine!.split(' ')[1]), headers, body: JSON.parse(rest.join('\r\n\r\n'))}
}

function request(method: string, path: string, headers: Record<string, string | number> = {}): string {
  const lines = Object.entries({host: 'localhost', connection: 'close', ...headers}).map(([name, value]) => `${name}: ${value}`)
  return `${method} ${path} HTTP/1.1\r\n${lines.join('\r\n')}\r\n\r\n`
}

/** The answer is the catalogue's: JSON `{error, message}`, a known code, and that code's status. */
function assertCatalogued(answer: RawAnswer | undefined, code: string, status: number): void {
  assert.ok(answer, 'the server answered nothing')
  assert.deepEqual({status: answer.status, error: answer.body.error}, {status, error: code}, JSON.stringify(answer.body))
  assert.ok(isErrorCode(answer.body.error))
  assert.equal(ERRORS[answer.body.error].status, answer.status, 'the status is the one the catalogue gives the code')
  assert.deepEqual(Object.keys(answer.body).sort(), ['error', 'message'])
  assert.equal(typeof answer.body.message, 'string')
  assert.match(answer.headers['content-type'] ?? '', /^application\/json/)
}

describe('every error of every route answers in the catalogue', () => {
  let cluster: TestCluster
  let servers: Array<{role: string; url: string; jsonRoute: string}>

  before(async () => {
    cluster = await TestCluster.start({keepers: 1, replicas: 1})
    servers = [
      {role: 'master', url: cluster.masterUrl, jsonRoute: '/uploads'},
      {role: 'keeper', url: cluster.keepers[0]!.url, jsonRoute: '/replicate'},
    ]
  })
  after(() => cluster.stop())

  test('bad percent-encoding in the path: 400', async () => {
    for (const {url} of servers) assertCatalogued(await raw(url, request('GET', '/files/%zz')), 'DFS_ERR_BAD_REQUEST', 400)
  })

  test('a path segment longer than any name can be: 414', async () => {
    for (const {url} of servers) assertCatalogued(await raw(url, request('GET', `/files/${'a'.repeat(3000)}`)), 'DFS_ERR_URI_TOO_LONG', 414)
  })

  test('headers larger than the server takes: 431', async () => {
    for (const {url} of servers) assertCatalogued(await raw(url, request('GET', '/health', {'x-big': 'a'.repeat(20_000)})), 'DFS_ERR_HEADERS_TOO_LARGE', 431)
  })

  test('bytes that are not HTTP: 400', async () => {
    for (const {url} of servers) assertCatalogued(await raw(url, 'GET /health HTTP/1.1\r\nhost: x\r\nno colon here\r\n\r\n'), 'DFS_ERR_BAD_REQUEST', 400)
  })

  test('bytes that are not HTTP after a good request on the same connection: 400 too', async () => {
    for (const {url} of servers) {
      const good = request('GET', '/health', {connection: 'keep-alive'})
      // Sent once the first answer is in, so the connection has already carried a response.
      const answer = await raw(url, good, (socket) => socket.once('data', () => socket.write('GET /health HTTP/1.1\r\nhost: x\r\nno colon here\r\n\r\n')))
      assertCatalogued(answer, 'DFS_ERR_BAD_REQUEST', 400)
    }
  })

  test('a JSON body announced larger than the limit: 413', async () => {
    for (const {url, jsonRoute} of servers) {
      const head = request('POST', jsonRoute, {'content-type': 'application/json', 'content-length': 20 * 1024 * 1024})
      assertCatalogued(await raw(url, head), 'DFS_ERR_BODY_TOO_LARGE', 413)
    }
  })

  test('a chunked JSON body that grows past the limit: 413', async () => {
    for (const {url, jsonRoute} of servers) {
      const head = request('POST', jsonRoute, {'content-type': 'application/json', 'transfer-encoding': 'chunked'})
      const answer = await raw(url, head, (socket) => {
        const chunk = Buffer.alloc(1024 * 1024, 0x20)
        let sent = 0
        // Keeps sending 1 MiB chunks (17 at most) until the server answers or closes.
        const next = () => {
          if (socket.destroyed || socket.readableLength > 0 || sent++ > 16) return
          socket.write(`${chunk.length.toString(16)}\r\n`)
          socket.write(chunk)
          if (socket.write('\r\n')) setImmediate(next)
          else socket.once('drain', next)
        }
        socket.once('data', () => (sent = Infinity))
        next()
      })
      assertCatalogued(answer, 'DFS_ERR_BODY_TOO_LARGE', 413)
    }
  })

  test('a JSON route sent another type: 415', async () => {
    for (const {url, jsonRoute} of servers) {
      for (const type of ['text/plain', 'application/x-www-form-urlencoded', 'application/octet-stream']) {
        const answer = await raw(url, request('POST', jsonRoute, {'content-type': type, 'content-length': 2}) + '{}')
        assertCatalogued(answer, 'DFS_ERR_UNSUPPORTED_MEDIA_TYPE', 415)
      }
    }
  })

  test('bad JSON, an empty JSON body, a body that fails its schema: 400', async () => {
    for (const {url, jsonRoute} of servers) {
      for (const body of ['{"name":', '', '[]', '{"__proto__":{"x":1}}']) {
        const answer = await raw(url, request('POST', jsonRoute, {'content-type': 'application/json', 'content-length': Buffer.byteLength(body)}) + body)
        assertCatalogued(answer, 'DFS_ERR_BAD_REQUEST', 400)
      }
    }
  })

  test('an unknown endpoint: 404, without echoing the query string', async () => {
    for (const {url} of servers) {
      const answer = await raw(url, request('GET', '/nowhere?grant=do-not-echo'))
      assertCatalogued(answer, 'DFS_ERR_NOT_FOUND', 404)
      assert.doesNotMatch(answer!.body.message, /do-not-echo/)
    }
  })

  test('a body cut short by the client: 400, and the server keeps serving', async () => {
    // The upload's grant lets the keeper start reading the body (without one it answers 401 first).
    const grant = await cluster.grant('write', cluster.keepers[0]!.id, {name: 'cut.bin', fileId: 'abc', size: 1000, sha256: 'a'.repeat(64)})
    const cut = [
      ...servers.map(({url, jsonRoute}) => ({url, head: request('POST', jsonRoute, {'content-type': 'application/json', 'content-length': 1000}), part: '{"name":"half'})),
      {url: servers[1]!.url, head: request('PUT', '/files/cut.bin?upload=abc', {'x-dfs-sha256': 'a'.repeat(64), 'content-length': 1000, 'x-dfs-grant': grant}), part: 'a few bytes'},
    ]
    for (const {url, head, part} of cut) {
      // Half-closed: the client can still read the answer.
      const answer = await raw(url, head, (socket) => socket.end(part))
      assertCatalogued(answer, 'DFS_ERR_BAD_REQUEST', 400)
      assert.match(answer!.body.message, /closed before the request body was complete/)
      // Reset: nobody is left to answer; the server must just carry on.
      assert.equal(await raw(url, head, (socket) => socket.write(part, () => socket.resetAndDestroy())), undefined)
      assert.equal((await fetch(`${url}/health`)).status, 200)
    }
  })
})
