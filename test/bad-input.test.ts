import assert from 'node:assert/strict'
import {createHash} from 'node:crypto'
import {readFile, readdir, rm} from 'node:fs/promises'
import {join} from 'node:path'
import {after, before, describe, test} from 'node:test'

import {GRANT_HEADER} from '../src/lib/grants.js'
import {FIXTURES, TestCluster, dfs, json, randomFile, sha256File, tempDir, type RunResult} from './helpers/cluster.js'

/** A CLI failure: non-zero exit, one line on stderr, no stack trace. */
function assertOneLineError(result: RunResult, pattern: RegExp): void {
  assert.notEqual(result.code, 0, `expected a failure, got stdout ${result.stdout}`)
  const lines = result.stderr.trim().split('\n')
  assert.equal(lines.length, 1, `expected one line, got:\n${result.stderr}`)
  assert.doesNotMatch(result.stderr, /\n\s+at /)
  assert.match(lines[0]!, pattern)
}

/** The names the master lists, for comparing before and after. */
async function listed(cluster: TestCluster): Promise<string[]> {
  return (await cluster.dfsJson<Array<{name: string}>>(['ls'])).map((file) => file.name)
}

// One cluster for the suite; a test that needs a stored file stores its own.
describe('bad input gets a clear error and changes nothing', () => {
  let cluster: TestCluster
  let work: string

  before(async () => {
    cluster = await TestCluster.start({keepers: 3})
    work = await tempDir()
  })
  after(async () => {
    await cluster.stop()
    await rm(work, {recursive: true, force: true})
  })

  test('a missing local file', async () => {
    assertOneLineError(await cluster.dfs(['put', join(work, 'nope.mp4')]), /cannot read .*nope\.mp4: no such file/)
    assertOneLineError(await cluster.dfs(['put', work]), /is a directory \(put --recursive stores a folder\)/)
  })

  test('an unknown name', async () => {
    for (const command of ['get', 'stat', 'rm']) {
      assertOneLineError(await cluster.dfs([command, 'missing.mp4']), /no file named "missing\.mp4"/)
    }
  })

  test('an unreachable master, named by its URL', async () => {
    assertOneLineError(await dfs(['ls', '--master', 'http://127.0.0.1:9']), /cannot reach the master at http:\/\/127\.0\.0\.1:9/)
    assertOneLineError(await dfs(['put', join(FIXTURES, 'sample_2.mp4')], {env: {DFS_MASTER: 'http://127.0.0.1:9'}}), /cannot reach the master at http:\/\/127\.0\.0\.1:9/)
    assertOneLineError(await dfs(['ls', '--master', 'not a url']), /invalid master URL/)
  })

  test('invalid names are refused by the CLI and by the master', async () => {
    const before = await listed(cluster)
    const names = ['', '..', 'a//b.mp4', '/a.mp4', 'a/./b.mp4', 'a\\b.mp4', 'bad\u0001name', 'line\nbreak', 'x'.repeat(256), '../etc/passwd']
    for (const name of names) {
      assertOneLineError(await cluster.dfs(['put', join(FIXTURES, 'sample_2.mp4'), '--name', name]), /name/)
      const {status, body} = await cluster.masterJson<{error: string; message: string}>('/uploads', {
        method: 'POST',
        headers: {'content-type': 'application/json'},
        body: JSON.stringify({name, size: 1, sha256: 'a'.repeat(64)}),
      })
      assert.equal(status, 400, `${JSON.stringify(name)} → ${status}`)
      assert.ok(body.error === 'DFS_ERR_INVALID_NAME' || body.error === 'DFS_ERR_BAD_REQUEST', body.error)
      assert.equal(typeof body.message, 'string')
    }

    assert.deepEqual(await listed(cluster), before)
  })

  test('no alive keepers', async () => {
    const lonely = await TestCluster.start({keepers: 0})
    try {
      assertOneLineError(await lonely.dfs(['put', join(FIXTURES, 'sample_2.mp4')]), /no alive keepers/)
      assert.deepEqual(await lonely.dfsJson(['ls']), [])
    } finally {
      await lonely.stop()
    }
  })

  test('malformed JSON and unknown routes get JSON errors', async () => {
    const malformed = await cluster.masterJson<{error: string}>('/uploads', {method: 'POST', headers: {'content-type': 'application/json'}, body: '{"name":'})
    assert.equal(malformed.status, 400)
    assert.equal(malformed.body.error, 'DFS_ERR_BAD_REQUEST')
    const missing = await cluster.masterJson<{error: string}>('/uploads', {method: 'POST', headers: {'content-type': 'application/json'}, body: '{"name":"x.mp4"}'})
    assert.equal(missing.status, 400)
    const negative = await cluster.masterJson<{error: string}>('/uploads', {
      method: 'POST',
      headers: {'content-type': 'application/json'},
      body: JSON.stringify({name: 'x.mp4', size: -1, sha256: 'a'.repeat(64)}),
    })
    assert.equal(negative.status, 400)
    const route = await json<{error: string; message: string}>(`${cluster.masterUrl}/nowhere`)
    assert.equal(route.status, 404)
    assert.equal(route.body.error, 'DFS_ERR_NOT_FOUND')
  })

  for (const lie of ['size', 'sha256'] as const) {
    test(`a keeper receiving a body whose ${lie} differs from what was announced keeps nothing and records nothing`, async () => {
      const body = Buffer.from('the bytes that really arrive')
      const announced = {
        name: `liar-${lie}.bin`,
        size: lie === 'size' ? body.length + 10 : body.length,
        sha256: lie === 'sha256' ? createHash('sha256').update('other bytes').digest('hex') : createHash('sha256').update(body).digest('hex'),
      }
      const ticket = await cluster.masterJson<{uploadId: string; keeper: {id: string; url: string}; grant: string}>('/uploads', {
        method: 'POST',
        headers: {'content-type': 'application/json'},
        body: JSON.stringify(announced),
      })
      assert.equal(ticket.status, 201)
      const response = await json<{error: string; message: string}>(
        `${ticket.body.keeper.url}/files/${announced.name}?upload=${ticket.body.uploadId}`,
        {method: 'PUT', headers: {'x-dfs-size': String(announced.size), 'x-dfs-sha256': announced.sha256, 'content-type': 'application/octet-stream', [GRANT_HEADER]: ticket.body.grant}, body},
      )
      assert.ok(response.status >= 400 && response.status < 500, `status ${response.status}`)
      assert.equal(response.body.error, lie === 'size' ? 'DFS_ERR_SIZE_MISMATCH' : 'DFS_ERR_CHECKSUM_MISMATCH')
      const keeper = cluster.keeperById(ticket.body.keeper.id)
      const dir = cluster.dataDirOf(keeper)
      assert.deepEqual(await readdir(join(dir, 'tmp')), [])
      assert.ok((await readdir(join(dir, 'blobs'))).every((entry) => !entry.startsWith(ticket.body.uploadId)))
      assertOneLineError(await cluster.dfs(['stat', announced.name]), /no file named/)
    })
  }

  test('an upload sent to a keeper under another name than its ticket (and its grant) is refused and kept nowhere', async () => {
    const body = Buffer.from('renamed on the way')
    const sha256 = createHash('sha256').update(body).digest('hex')
    const ticket = await cluster.masterJson<{uploadId: string; keeper: {id: string; url: string}; grant: string}>('/uploads', {
      method: 'POST',
      headers: {'content-type': 'application/json'},
      body: JSON.stringify({name: 'ticket-name.bin', size: body.length, sha256}),
    })
    const response = await json<{error: string; message: string}>(`${ticket.body.keeper.url}/files/url-name.bin?upload=${ticket.body.uploadId}`, {
      method: 'PUT',
      headers: {'x-dfs-sha256': sha256, 'content-type': 'application/octet-stream', [GRANT_HEADER]: ticket.body.grant},
      body,
    })
    assert.equal(response.status, 403)
    assert.match(response.body.message, /the grant is for another file than "url-name.bin"/)
    assertOneLineError(await cluster.dfs(['stat', 'url-name.bin']), /no file named/)
    assertOneLineError(await cluster.dfs(['stat', 'ticket-name.bin']), /no file named/)
    const dir = cluster.dataDirOf(cluster.keeperById(ticket.body.keeper.id))
    assert.ok((await readdir(join(dir, 'blobs'))).every((entry) => !entry.startsWith(ticket.body.uploadId)))
  })

  test('a keeper refuses uploads without a ticket, a hash or a valid name', async () => {
    const keeper = cluster.keepers[0]!
    const noTicket = await json<{error: string}>(`${keeper.url}/files/x.bin`, {method: 'PUT', body: 'abc', headers: {'x-dfs-sha256': 'a'.repeat(64)}})
    assert.equal(noTicket.status, 400)
    const noHash = await json<{error: string}>(`${keeper.url}/files/x.bin?upload=abc`, {method: 'PUT', body: 'abc'})
    assert.equal(noHash.status, 400)
    const traversal = await json<{error: string}>(`${keeper.url}/files/..%2F..%2Fetc%2Fpasswd?upload=abc`, {method: 'PUT', body: 'abc', headers: {'x-dfs-sha256': 'a'.repeat(64)}})
    assert.equal(traversal.status, 400)
    assert.equal(traversal.body.error, 'DFS_ERR_INVALID_NAME')
    const read = await json<{error: string}>(`${keeper.url}/files/..%2Fkeeper.json`)
    assert.equal(read.status, 400)
  })

  test('bad input aimed at a stored file leaves it unchanged, byte for byte', async () => {
    const source = join(work, 'precious.bin')
    const sha256 = await randomFile(source, 1024 * 1024 + 7)
    assert.equal((await cluster.dfs(['put', source])).code, 0)
    const before = await cluster.stat('precious.bin')

    // Other bytes under its name, by the CLI and by a ticket request of one's own.
    const other = join(work, 'impostor.bin')
    const otherSha256 = await randomFile(other, 4096)
    assertOneLineError(await cluster.dfs(['put', other, '--name', 'precious.bin']), /a file named "precious\.bin" already exists/)
    const ticket = await cluster.masterJson<{error: string}>('/uploads', {
      method: 'POST',
      headers: {'content-type': 'application/json'},
      body: JSON.stringify({name: 'precious.bin', size: 4096, sha256: otherSha256}),
    })
    assert.equal(ticket.status, 409)
    assert.equal(ticket.body.error, 'DFS_ERR_EXISTS')
    // Bytes sent straight to the keeper that holds it, under its name, with a made-up ticket and no
    // grant (security-clients.test.ts tries grants of every wrong kind).
    const holder = before.replicas[0]!
    const forged = await json<{error: string}>(`${holder.url}/files/precious.bin?upload=madeUpTicket`, {
      method: 'PUT',
      headers: {'x-dfs-sha256': otherSha256, 'content-type': 'application/octet-stream'},
      body: await readFile(other),
    })
    assert.equal(forged.status, 401)
    assert.equal(forged.body.error, 'DFS_ERR_UNAUTHENTICATED')
    // And with the stored file's own id as the ticket: the keeper already holds that id.
    const replayed = await json<{error: string}>(`${holder.url}/files/precious.bin?upload=${before.fileId}`, {
      method: 'PUT',
      headers: {'x-dfs-sha256': otherSha256, 'content-type': 'application/octet-stream'},
      body: await readFile(other),
    })
    assert.equal(replayed.status, 401)
    assert.equal(replayed.body.error, 'DFS_ERR_UNAUTHENTICATED')

    const after = await cluster.stat('precious.bin')
    assert.equal(after.fileId, before.fileId)
    assert.equal(after.sha256, sha256)
    const out = join(work, 'precious.copy')
    const get = await cluster.dfs(['get', 'precious.bin', '-o', out])
    assert.equal(get.code, 0, get.stderr)
    assert.equal(await sha256File(out), sha256)
    // Every replica is still on its keeper and served by name: the stored bytes, all of them.
    for (const replica of after.replicas) {
      const served = await fetch(`${replica.url}/files/precious.bin`, {headers: {[GRANT_HEADER]: replica.grant!}})
      assert.equal(served.status, 200, `${replica.keeper} serves it`)
      assert.equal(createHash('sha256').update(Buffer.from(await served.arrayBuffer())).digest('hex'), sha256, `${replica.keeper} serves the stored bytes`)
    }
  })
})
