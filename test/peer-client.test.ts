import assert from 'node:assert/strict'
import {once} from 'node:events'
import {createServer, type RequestListener, type Server} from 'node:http'
import type {AddressInfo} from 'node:net'
import {rm} from 'node:fs/promises'
import {after, before, describe, test} from 'node:test'

import {DfsError} from '../src/lib/errors.js'
import {Peer} from '../src/lib/peer-client.js'
import {keeperRoutes, masterRoutes, type Route} from '../src/lib/protocol.js'
import {RetryPolicy, connectionRefused} from '../src/lib/retry-policy.js'
import {Keeper} from '../src/roles/keeper/keeper.js'
import {createKeeperServer} from '../src/roles/keeper/server.js'
import {Master} from '../src/roles/master/master.js'
import {createMasterServer} from '../src/roles/master/server.js'
import {dfs, tempDir, waitFor} from './helpers/cluster.js'

/** A plain HTTP server that is not a dfs node, on loopback. */
async function foreignServer(listener: RequestListener): Promise<{url: string; server: Server}> {
  const server = createServer(listener)
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return {url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server}
}

async function closeServer(server: Server): Promise<void> {
  server.closeAllConnections()
  await new Promise((resolve) => server.close(resolve))
}

describe('a client pointed at something that is not a dfs master says so in one line', () => {
  const answers: Record<string, {status: number; type: string; body: string}> = {
    'JSON of another shape': {status: 200, type: 'application/json', body: '{"hello": "world"}'},
    'a web page': {status: 200, type: 'text/html', body: '<html><body>hello</body></html>'},
    'an error page': {status: 404, type: 'text/html', body: '<html><body>Not Found</body></html>'},
  }

  for (const [what, answer] of Object.entries(answers)) {
    test(`a server answering ${what}`, async () => {
      const {url, server} = await foreignServer((_request, response) => {
        response.writeHead(answer.status, {'content-type': answer.type})
        response.end(answer.body)
      })
      try {
        const result = await dfs(['ls', '--master', url])
        assert.equal(result.code, 6, result.stderr)
        const lines = result.stderr.trim().split('\n')
        assert.equal(lines.length, 1, result.stderr)
        assert.match(lines[0]!, new RegExp(`^Error: ${url.replaceAll('.', '\\.')} is not a dfs master \\(its answer to GET /files is not one: .+\\)$`))
      } finally {
        await closeServer(server)
      }
    })
  }

  test('an answer that is JSON but misses a field the client reads', async () => {
    const file = {name: 'a.mp4', fileId: 'f1', size: 10, sha256: 'a'.repeat(64), createdAt: new Date().toISOString(), target: 3, health: 'healthy'}
    const {url, server} = await foreignServer((_request, response) => {
      response.writeHead(200, {'content-type': 'application/json'})
      response.end(JSON.stringify(file))
    })
    try {
      const result = await dfs(['get', 'a.mp4', '--master', url])
      assert.equal(result.code, 6, result.stderr)
      assert.match(result.stderr, /is not a dfs master \(its answer to GET \/files\/a\.mp4 is not one: expected required property at \/replicas\)/)
    } finally {
      await closeServer(server)
    }
  })
})

describe('a file answer without the headers of a dfs keeper is refused before its bytes are used', () => {
  let url: string
  let server: Server

  before(async () => {
    ;({url, server} = await foreignServer((request, response) => {
      const headers: Record<string, string> = {'content-type': 'application/octet-stream'}
      if (request.url?.includes('fileId=good')) Object.assign(headers, {'x-dfs-file-id': 'good', 'x-dfs-sha256': 'b'.repeat(64)})
      response.writeHead(200, headers)
      response.end('some bytes')
    }))
  })
  after(() => closeServer(server))

  test('missing x-dfs-file-id', async () => {
    const keeper = new Peer({role: 'keeper', baseUrl: url})
    await assert.rejects(keeper.open(keeperRoutes.read, {params: {name: 'a.mp4'}, query: {fileId: 'other'}}), (error: unknown) => {
      assert.ok(error instanceof DfsError)
      assert.equal(error.code, 'DFS_ERR_BAD_RESPONSE')
      assert.match(error.message, /is not a dfs keeper \(its answer to GET \/files\/a\.mp4 is not one: headers: expected required property at \/x-dfs-file-id\)/)
      return true
    })
  })

  test('with them, the bytes come through', async () => {
    const keeper = new Peer({role: 'keeper', baseUrl: url})
    const answer = await keeper.open(keeperRoutes.read, {params: {name: 'a.mp4'}, query: {fileId: 'good'}})
    assert.equal(await answer.body.text(), 'some bytes')
  })

  test('a status the request does not call for', async () => {
    const keeper = new Peer({role: 'keeper', baseUrl: url})
    const range = keeper.open(keeperRoutes.read, {params: {name: 'a.mp4'}, query: {fileId: 'good'}, headers: {range: 'bytes=0-3'}}, {expect: [206]})
    await assert.rejects(range, /is not one: HTTP 200 instead of 206/)
  })
})

describe('the retry policy', () => {
  const refused = () => Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:9'), {code: 'ECONNREFUSED'})
  const failing = (failures: number, error: () => unknown) => {
    let calls = 0
    return {
      get calls() {
        return calls
      },
      attempt: async () => {
        calls++
        if (calls <= failures) throw error()
        return 'answered'
      },
    }
  }

  const quick = new RetryPolicy({retryable: connectionRefused, patienceMs: 60_000, firstDelayMs: 1, maxDelayMs: 2})

  test('a refused connection is tried again, also when the refusal is the cause of a DfsError', async () => {
    const plain = failing(2, refused)
    assert.equal(await quick.run(plain.attempt), 'answered')
    assert.equal(plain.calls, 3)
    const wrapped = failing(2, () => new DfsError('DFS_ERR_MASTER_UNREACHABLE', 'cannot reach the master', {cause: refused()}))
    assert.equal(await quick.run(wrapped.attempt), 'answered')
    assert.equal(wrapped.calls, 3)
  })

  test('other failures, and every failure under RetryPolicy.never, are not', async () => {
    const other = failing(1, () => new DfsError('DFS_ERR_EXISTS', 'exists'))
    await assert.rejects(quick.run(other.attempt), /exists/)
    assert.equal(other.calls, 1)
    const never = failing(1, refused)
    await assert.rejects(RetryPolicy.never.run(never.attempt), /ECONNREFUSED/)
    assert.equal(never.calls, 1)
  })

  test('an aborted signal stops the retries with the last failure', async () => {
    const stop = new AbortController()
    const endless = failing(Infinity, refused)
    const run = quick.run(endless.attempt, {
      signal: stop.signal,
      onRetry: (_error, failures) => {
        if (failures === 3) stop.abort()
      },
    })
    await assert.rejects(run, /ECONNREFUSED/)
    assert.equal(endless.calls, 3)
  })

  test('the master is tried again when it refuses, a keeper is not', () => {
    assert.equal(new Peer({role: 'master', baseUrl: 'http://127.0.0.1:9'}).retry, RetryPolicy.refusedForAWhile)
    assert.equal(new Peer({role: 'keeper', baseUrl: 'http://127.0.0.1:9'}).retry, RetryPolicy.never)
    assert.throws(() => new Peer({role: 'keeper', baseUrl: 'ftp://127.0.0.1:9'}), /invalid keeper URL/)
  })
})

describe('a keeper that starts before its master', () => {
  let dir: string

  before(async () => {
    dir = await tempDir()
  })
  after(() => rm(dir, {recursive: true, force: true}))

  /** A loopback port with nothing listening on it (for now). */
  async function freePort(): Promise<number> {
    const {url, server} = await foreignServer(() => {})
    await closeServer(server)
    return Number(new URL(url).port)
  }

  test('registers once the master is up, however long that takes', async () => {
    const port = await freePort()
    const logs: string[] = []
    const keeper = await Keeper.open({master: new Peer({role: 'master', baseUrl: `http://127.0.0.1:${port}`}), dataDir: `${dir}/patient`, heartbeatIntervalMs: 60_000, log: (line) => logs.push(line)})
    const registered = keeper.register('http://127.0.0.1:1')
    // Past the 3 s for which a single request is tried again: the registration itself is retried.
    await waitFor('a failed registration', () => logs.some((line) => /cannot reach the master at .*; retrying/.test(line)))
    const master = new Master({dataDir: `${dir}/master`, replicas: 3, heartbeatTimeoutMs: 60_000, replicationIntervalMs: 3_600_000, log: {info() {}, warn() {}}})
    const app = createMasterServer(master, 'silent')
    try {
      await app.listen({host: '127.0.0.1', port})
      await registered
      assert.match(keeper.id, /^k/)
      assert.deepEqual(master.status().map((info) => info.id), [keeper.id])
    } finally {
      keeper.stop()
      await app.close()
      await master.stop()
    }
  })

  // The timeout only guards against a hang: a keeper that ignores stop() tries for ever.
  test('stops trying when it is stopped', {timeout: 60_000}, async () => {
    const port = await freePort()
    const logs: string[] = []
    const keeper = await Keeper.open({master: new Peer({role: 'master', baseUrl: `http://127.0.0.1:${port}`}), dataDir: `${dir}/stopped`, heartbeatIntervalMs: 60_000, log: (line) => logs.push(line)})
    const registered = keeper.register('http://127.0.0.1:1')
    await waitFor('a failed registration', () => logs.length > 0)
    keeper.stop()
    await assert.rejects(registered, /cannot reach the master/)
  })
})

describe('the servers answer exactly the routes of protocol.ts, validated by their schemas', () => {
  let dir: string
  let master: Master
  let masterApp: ReturnType<typeof createMasterServer>
  let keeperApp: ReturnType<typeof createKeeperServer>

  before(async () => {
    dir = await tempDir()
    master = new Master({dataDir: `${dir}/master`, replicas: 3, heartbeatTimeoutMs: 60_000, replicationIntervalMs: 3_600_000, log: {info() {}, warn() {}}})
    masterApp = createMasterServer(master, 'silent')
    const keeper = await Keeper.open({master: new Peer({role: 'master', baseUrl: 'http://127.0.0.1:9'}), dataDir: `${dir}/keeper`, heartbeatIntervalMs: 60_000, log() {}})
    keeperApp = createKeeperServer(keeper, 'silent')
    await Promise.all([masterApp.ready(), keeperApp.listen({host: '127.0.0.1', port: 0})])
  })
  after(async () => {
    await Promise.all([masterApp.close(), keeperApp.close()])
    await master.stop()
    await rm(dir, {recursive: true, force: true})
  })

  test('every declared route is served', () => {
    const served = (app: typeof masterApp, routes: Record<string, Route>) => {
      for (const [name, route] of Object.entries(routes)) assert.ok(app.hasRoute({method: route.method, url: route.url}), `${name}: ${route.method} ${route.url}`)
    }

    served(masterApp, masterRoutes)
    served(keeperApp, keeperRoutes)
  })

  test("a keeper's refusal is its catalogue error, also for HEAD, whose answer has no body", async () => {
    const address = keeperApp.server.address() as AddressInfo
    const keeper = new Peer({role: 'keeper', baseUrl: `http://127.0.0.1:${address.port}`})
    for (const method of ['GET', 'HEAD'] as const) {
      await assert.rejects(keeper.open(keeperRoutes.read, {params: {name: 'missing.bin'}}, {method: method === 'HEAD' ? 'HEAD' : undefined}), (error: unknown) => {
        assert.ok(error instanceof DfsError, String(error))
        assert.equal(error.code, 'DFS_ERR_NOT_FOUND', `${method}: ${error.message}`)
        return true
      })
    }
  })

  test('query strings and headers are checked against the route', async () => {
    const sha256 = 'a'.repeat(64)
    const upload = (query: string, headers: Record<string, string>) =>
      keeperApp.inject({method: 'PUT', url: `/files/x.bin${query}`, headers: {'content-type': 'application/octet-stream', ...headers}, payload: 'abc'})
    for (const [query, headers, field] of [
      ['?upload=..%2Fescape', {'x-dfs-sha256': sha256}, /querystring.*upload/],
      ['', {'x-dfs-sha256': sha256}, /querystring.*upload/],
      ['?upload=u1', {'x-dfs-sha256': 'ABC'}, /headers.*x-dfs-sha256/],
      ['?upload=u1', {'x-dfs-sha256': sha256, 'x-dfs-size': 'three'}, /headers.*x-dfs-size/],
    ] as const) {
      const response = await upload(query, headers)
      assert.equal(response.statusCode, 400, `${query} ${JSON.stringify(headers)}`)
      const body = response.json<{error: string; message: string}>()
      assert.equal(body.error, 'DFS_ERR_BAD_REQUEST')
      assert.match(body.message, field)
    }

    const read = await keeperApp.inject({method: 'GET', url: '/files/x.bin?fileId=not%20an%20id'})
    assert.equal(read.statusCode, 400)
    assert.match(read.json<{message: string}>().message, /querystring.*fileId/)
    const heartbeat = await masterApp.inject({method: 'POST', url: '/keepers/bad%20id/heartbeat', payload: {}})
    assert.equal(heartbeat.statusCode, 400)
    assert.match(heartbeat.json<{message: string}>().message, /params.*\bid\b/)
  })
})
