// A keeper writes an upload's blob and description durably with an `undecided` mark, asks the
// master to commit it, and drops the mark only once the master said yes. A keeper killed in
// between comes back with an undecided upload, and its registration asks the master, by file id,
// whether it recorded it: a recorded one is kept (and counted, under the name the master has now),
// one never committed is removed. The answer needs no memory of the upload on the master's side, so
// it holds when the master restarted meanwhile too (the chaos run found that case: a master that
// had lost its tickets kept the orphan as "unknown" for good).
//
// The crash's leftovers are made on disk while the keeper is down, as its durable write leaves
// them: blob and undecided description (`<fileId>.undecided.json`) in blobs/; one test leaves the
// mark inside `<fileId>.json` instead, as keepers wrote it before, which a keeper still honours.

import assert from 'node:assert/strict'
import {createHash, randomBytes} from 'node:crypto'
import {readFile, readdir, rename, rm, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {describe, test} from 'node:test'

import {bearer, clusterPerTest, json, randomFile, sha256File, waitFor, type TestCluster} from './helpers/cluster.js'
import {GRANT_HEADER} from '../src/lib/grants.js'
import {blobIds} from './helpers/keeper-disk.js'
import {logMessages} from './helpers/server-logs.js'

interface Description {
  fileId: string
  name: string
  size: number
  sha256: string
  createdAt?: number
  undecided?: boolean
}

/** A blob's description, undecided when it lies at `<fileId>.undecided.json` (or, as keepers wrote it before, says so inside). */
async function readDescription(cluster: TestCluster, keeperId: string, fileId: string): Promise<Description> {
  const path = cluster.blobPath(keeperId, fileId)
  const undecided = await readFile(`${path}.undecided.json`, 'utf8').catch(() => undefined)
  if (undecided !== undefined) return {...(JSON.parse(undecided) as Description), undecided: true}
  return JSON.parse(await readFile(`${path}.json`, 'utf8')) as Description
}

/** A blob and its undecided description in a stopped keeper's blobs/, as an upload's durable write leaves them. */
async function leaveUndecided(cluster: TestCluster, keeperId: string, file: {fileId: string; name: string; bytes: Buffer}): Promise<void> {
  const sha256 = createHash('sha256').update(file.bytes).digest('hex')
  const path = cluster.blobPath(keeperId, file.fileId)
  await writeFile(path, file.bytes)
  await writeFile(`${path}.undecided.json`, JSON.stringify({fileId: file.fileId, name: file.name, size: file.bytes.length, sha256, createdAt: Date.now()}))
}

interface Ticket {
  uploadId: string
  keeper: {id: string; url: string}
  grant?: string
}

/** A request that may never be answered (its keeper waits on a paused master): sent now, its outcome ignored. */
function sendAndForget(url: string, init: RequestInit): void {
  void fetch(url, init).then(
    async (response) => response.body?.cancel(),
    () => {},
  )
}

describe('an upload left undecided on a keeper by its crash', () => {
  const clusters = clusterPerTest()

  test('a keeper writes each upload undecided until its commit is answered: killed while the master cannot answer, it keeps nothing', async () => {
    const cluster = await clusters.start({keepers: 1, replicas: 1})
    const keeper = cluster.keepers[0]!
    const dir = cluster.dataDirOf(keeper)
    const post = (path: string, body: unknown) => cluster.masterJson<Ticket>(path, {method: 'POST', headers: {'content-type': 'application/json'}, body: JSON.stringify(body)})
    const bytes = randomBytes(30_000)
    const sha256 = createHash('sha256').update(bytes).digest('hex')

    // A one-pass upload, held whole by the keeper and sealed by the master, only its seal at the keeper to come.
    const onePass = await post('/uploads', {name: 'one-pass.bin', size: bytes.length})
    assert.equal(onePass.status, 201, JSON.stringify(onePass.body))
    const held = await fetch(`${keeper.url}/uploads/${onePass.body.uploadId}?name=one-pass.bin`, {
      method: 'PUT',
      headers: {'content-type': 'application/octet-stream', 'x-dfs-size': String(bytes.length), ...(onePass.body.grant ? {[GRANT_HEADER]: onePass.body.grant} : {})},
      body: bytes,
    })
    assert.equal(held.status, 202, await held.text())
    const seal = await post(`/uploads/${onePass.body.uploadId}/seal`, {sha256})
    assert.equal(seal.status, 200, JSON.stringify(seal.body))
    // An upload with its sha256 announced, its body still to send.
    const plain = await post('/uploads', {name: 'plain.bin', size: bytes.length, sha256})
    assert.equal(plain.status, 201, JSON.stringify(plain.body))

    // The master stops answering: both uploads become durable on the keeper, their commits wait.
    cluster.master.child.kill('SIGSTOP')
    sendAndForget(`${keeper.url}/files/plain.bin?upload=${plain.body.uploadId}`, {
      method: 'PUT',
      headers: {'content-type': 'application/octet-stream', 'x-dfs-sha256': sha256, 'x-dfs-size': String(bytes.length), ...(plain.body.grant ? {[GRANT_HEADER]: plain.body.grant} : {})},
      body: bytes,
    })
    sendAndForget(`${keeper.url}/uploads/${onePass.body.uploadId}/seal`, {
      method: 'POST',
      headers: {'content-type': 'application/json', ...((seal.body as {grant?: string}).grant ? {[GRANT_HEADER]: (seal.body as {grant?: string}).grant!} : {})},
      body: JSON.stringify({sha256}),
    })
    const ids = [plain.body.uploadId, onePass.body.uploadId].sort()
    await waitFor('both uploads durable in blobs/', async () => (await blobIds(dir)).join() === ids.join())
    for (const fileId of ids) {
      await waitFor(`the description of ${fileId} written`, async () => readDescription(cluster, keeper.id, fileId).catch(() => undefined))
      assert.equal((await readDescription(cluster, keeper.id, fileId)).undecided, true, `${fileId} is undecided on disk while its commit waits`)
    }

    // Both die: the keeper before any answer, the master before it read the commits.
    await keeper.stop('SIGKILL')
    await cluster.master.stop('SIGKILL')
    await cluster.startMaster()
    const back = await cluster.addKeeper(dir)
    await waitFor('both uploads removed', async () => (await blobIds(dir)).length === 0)
    for (const name of ['plain.bin', 'one-pass.bin']) {
      assert.ok(logMessages(back).some((line) => line.includes(`upload of "${name}"`) && line.endsWith('whose commit had no answer was not recorded: removed')), logMessages(back).join('\n'))
      const stat = await cluster.masterJson(`/files/${name}`)
      assert.equal(stat.status, 404, `${name} was never recorded`)
    }
  })

  test('one never committed is removed at the keeper\'s registration, although the master restarted meanwhile', async () => {
    const cluster = await clusters.start({keepers: 1, replicas: 1})
    const keeper = cluster.keepers[0]!
    const dir = cluster.dataDirOf(keeper)
    const bytes = randomBytes(10_000)
    const sha256 = createHash('sha256').update(bytes).digest('hex')
    const ticket = await json<{uploadId: string; keeper: {id: string}}>(`${cluster.masterUrl}/uploads`, {
      method: 'POST',
      headers: {'content-type': 'application/json', ...bearer(cluster.token)},
      body: JSON.stringify({name: 'orphan.bin', size: bytes.length, sha256}),
    })
    assert.equal(ticket.status, 201, JSON.stringify(ticket.body))
    assert.equal(ticket.body.keeper.id, keeper.id)

    await keeper.stop('SIGKILL')
    await leaveUndecided(cluster, keeper.id, {fileId: ticket.body.uploadId, name: 'orphan.bin', bytes})
    // The master restarts too: its tickets (memory only) are gone, so nothing on its side remembers this upload.
    await cluster.master.stop('SIGKILL')
    await cluster.startMaster()
    assert.deepEqual(await blobIds(dir), [ticket.body.uploadId])

    const back = await cluster.addKeeper(dir)
    assert.equal(back.id, keeper.id)
    await waitFor('the never-committed upload removed from the keeper', async () => (await blobIds(dir)).length === 0)
    assert.ok(logMessages(back).some((line) => line.includes(`upload of "orphan.bin" (${ticket.body.uploadId}) whose commit had no answer was not recorded: removed`)), back.logs.join('\n'))
    assert.ok(logMessages(cluster.master).some((line) => line.includes(`keeper ${keeper.id} holds 1 upload whose commit it never heard answered: 0 recorded (kept), 1 not (removed)`)), cluster.master.logs.join('\n'))
    assert.ok(!logMessages(cluster.master).some((line) => line.includes('has no record of')), 'nothing is kept as unknown')

    // The name was never taken: a put of it works, and reads back.
    const source = join(clusters.work, 'orphan.bin')
    const putSha = await randomFile(source, 5000)
    const put = await cluster.dfs(['put', source])
    assert.equal(put.code, 0, put.stderr)
    const out = join(clusters.work, 'orphan.copy')
    assert.equal((await cluster.dfs(['get', 'orphan.bin', '-o', out])).code, 0)
    assert.equal(await sha256File(out), putSha)
  })

  test('one the master recorded is kept and counted, by file id under its current name, and its mark is dropped', async () => {
    const cluster = await clusters.start({keepers: 1, replicas: 1})
    const keeper = cluster.keepers[0]!
    const dir = cluster.dataDirOf(keeper)
    const source = join(clusters.work, 'kept.bin')
    const sha256 = await randomFile(source, 20_000)
    const put = await cluster.dfs(['put', source])
    assert.equal(put.code, 0, put.stderr)
    const {fileId} = await cluster.stat('kept.bin')
    // Once the commit's answer is heard, the keeper drops the undecided mark (a rename, before the client is answered).
    const {createdAt, ...described} = await readDescription(cluster, keeper.id, fileId)
    assert.deepEqual(described, {fileId, name: 'kept.bin', size: 20_000, sha256})
    assert.ok(Number.isSafeInteger(createdAt))
    const still = join(clusters.work, 'still.bin')
    await randomFile(still, 10_000)
    assert.equal((await cluster.dfs(['put', still])).code, 0)
    const stillId = (await cluster.stat('still.bin')).fileId

    // The keeper dies between the commits' answers and those renames (kept.bin's description is
    // still at <fileId>.undecided.json; still.bin's has the mark inside, as keepers wrote it
    // before); while it is down kept.bin is renamed (its replica becomes dead, not gone) and the
    // master restarts.
    await keeper.stop('SIGKILL')
    await rename(`${cluster.blobPath(keeper.id, fileId)}.json`, `${cluster.blobPath(keeper.id, fileId)}.undecided.json`)
    const stillDescription = await readDescription(cluster, keeper.id, stillId)
    await writeFile(`${cluster.blobPath(keeper.id, stillId)}.json`, JSON.stringify({...stillDescription, undecided: true}))
    const moved = await cluster.dfs(['mv', 'kept.bin', 'moved.bin'])
    assert.equal(moved.code, 0, moved.stderr)
    await cluster.master.stop('SIGKILL')
    await cluster.startMaster()

    const back = await cluster.addKeeper(dir)
    assert.equal(back.id, keeper.id)
    assert.ok(logMessages(cluster.master).some((line) => line.includes(`keeper ${keeper.id} holds 2 uploads whose commit it never heard answered: 2 recorded (kept), 0 not (removed)`)), cluster.master.logs.join('\n'))
    await waitFor('the keeper counted as the file\'s replica', async () => (await cluster.stat('moved.bin')).replicas.some((replica) => replica.keeper === keeper.id && replica.alive))
    assert.ok(logMessages(back).some((line) => line.includes(`upload of "kept.bin" (${fileId}) whose commit had no answer was recorded: kept`)), back.logs.join('\n'))
    // Kept under the name the master has now, and no longer undecided, so that a later start does not ask again.
    await waitFor('the description renamed and decided', async () => {
      const now = await readDescription(cluster, keeper.id, fileId)
      return now.name === 'moved.bin' && now.undecided !== true
    })
    await waitFor('the other description decided, its name unchanged', async () => {
      const now = await readDescription(cluster, keeper.id, stillId)
      return now.name === 'still.bin' && now.undecided !== true
    })
    assert.deepEqual(await blobIds(dir), [fileId, stillId].sort())

    const out = join(clusters.work, 'moved.copy')
    const get = await cluster.dfs(['get', 'moved.bin', '-o', out])
    assert.equal(get.code, 0, get.stderr)
    assert.equal(await sha256File(out), sha256)
    const fsck = await cluster.masterJson<{status: string}>('/fsck')
    assert.equal(fsck.body.status, 'healthy', JSON.stringify(fsck.body))
  })

  test('an undecided description found invalid at the start is quarantined with its blob, as a decided one is, and asked about nowhere', async () => {
    const cluster = await clusters.start({keepers: 1, replicas: 1})
    const keeper = cluster.keepers[0]!
    const dir = cluster.dataDirOf(keeper)
    await keeper.stop('SIGKILL')
    const fileId = 'undecided-and-garbled'
    const path = cluster.blobPath(keeper.id, fileId)
    await writeFile(path, randomBytes(1000))
    await writeFile(`${path}.undecided.json`, '{"fileId": "undecided-and-garbled", "na')

    const back = await cluster.addKeeper(dir)
    assert.equal(back.id, keeper.id)
    assert.deepEqual(await blobIds(dir), [])
    assert.deepEqual((await readdir(join(dir, 'quarantine'))).sort(), [fileId, `${fileId}.undecided.json`])
    assert.ok(logMessages(back).some((line) => line.includes(`blob ${fileId} quarantined, not served or reported`)), back.logs.join('\n'))
    assert.ok(!logMessages(cluster.master).some((line) => line.includes('whose commit it never heard answered')), cluster.master.logs.join('\n'))
  })

  test('a table rebuilt from the keepers (--recover) counts it as the keeper\'s file: its only copy is not lost', async () => {
    const cluster = await clusters.start({keepers: 1, replicas: 1})
    const keeper = cluster.keepers[0]!
    const dir = cluster.dataDirOf(keeper)
    const source = join(clusters.work, 'only-copy.bin')
    const sha256 = await randomFile(source, 30_000)
    assert.equal((await cluster.dfs(['put', source])).code, 0)
    const {fileId} = await cluster.stat('only-copy.bin')
    await waitFor('the description decided', async () => (await readDescription(cluster, keeper.id, fileId)).undecided !== true)

    // The keeper dies before its mark was dropped, and the master's table is lost with its disk.
    await keeper.stop('SIGKILL')
    await rename(`${cluster.blobPath(keeper.id, fileId)}.json`, `${cluster.blobPath(keeper.id, fileId)}.undecided.json`)
    await cluster.master.stop('SIGKILL')
    await rm(join(cluster.dir, 'master'), {recursive: true, force: true})
    await cluster.startMaster(['--recover', '--recover-keepers', '1'])
    const back = await cluster.addKeeper(dir)

    await waitFor('the table rebuilt with the file', async () => {
      const {status, body} = await cluster.masterJson<{fileId?: string}>('/files/only-copy.bin')
      return status === 200 && body.fileId === fileId
    })
    await waitFor('the keeper keeps it, decided', async () => (await readDescription(cluster, back.id, fileId)).undecided !== true)
    assert.deepEqual(await blobIds(dir), [fileId])
    const out = join(clusters.work, 'only-copy.out')
    const get = await cluster.dfs(['get', 'only-copy.bin', '-o', out])
    assert.equal(get.code, 0, get.stderr)
    assert.equal(await sha256File(out), sha256)
  })
})
