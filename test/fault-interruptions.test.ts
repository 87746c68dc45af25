import assert from 'node:assert/strict'
import {spawn} from 'node:child_process'
import {createHash} from 'node:crypto'
import {once} from 'node:events'
import {readdir, rm, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {describe, test} from 'node:test'

import Database from 'better-sqlite3'

import {GRANT_HEADER} from '../src/lib/grants.js'
import {BIN, ServerProcess, TestCluster, bearer, clusterPerTest, randomFile, sha256File, waitFor} from './helpers/cluster.js'
import {HttpProxy} from './helpers/http-proxy.js'
import {startDfs, whileRunning} from './helpers/running-dfs.js'
import {whileImmutable} from './helpers/skip.js'

const MiB = 1024 * 1024

async function tmpEntries(cluster: TestCluster): Promise<string[]> {
  const all = await Promise.all(cluster.keepers.map((keeper) => readdir(join(cluster.dataDirOf(keeper), 'tmp')).catch(() => [])))
  return all.flat()
}

async function blobIds(cluster: TestCluster): Promise<Set<string>> {
  const ids = new Set<string>()
  for (const keeper of cluster.keepers) {
    for (const entry of await readdir(join(cluster.dataDirOf(keeper), 'blobs'))) ids.add(entry.replace(/\.json$/, ''))
  }

  return ids
}

/** Alive replicas in a GET /files/:name answer. */
function aliveIn(answer: string): number {
  return (JSON.parse(answer) as {replicas: Array<{alive: boolean}>}).replicas.filter((replica) => replica.alive).length
}

describe('interrupted uploads and restarts leave nothing half-done', () => {
  const clusters = clusterPerTest()
  let cluster: TestCluster
  const work = () => clusters.work

  test('a client killed mid-upload leaves no listed, served or stored file, and no temp file', async () => {
    cluster = await clusters.start({keepers: 2})
    const source = join(work(), 'abandoned.bin')
    await randomFile(source, 128 * MiB)
    const put = spawn(process.execPath, [BIN, 'put', source, ...cluster.clientFlags], {stdio: 'ignore'})
    await waitFor('the upload to start', async () => (await tmpEntries(cluster)).length > 0)
    put.kill('SIGKILL')
    await once(put, 'close')
    await waitFor('the keeper to remove the partial temp file', async () => (await tmpEntries(cluster)).length === 0)
    assert.deepEqual(await cluster.dfsJson(['ls']), [])
    assert.deepEqual([...(await blobIds(cluster))], [])
    // Nothing serves it either: a keeper reads only with the master's grant, and the master grants
    // nothing for a file it has no record of.
    const stat = await cluster.dfs(['stat', 'abandoned.bin'])
    assert.equal(stat.code, 3, stat.stderr)
    assert.match(stat.stderr, /no file named "abandoned\.bin"/)
  })

  test('temp files and half-renamed blobs left by a crash are cleaned up when the keeper starts', async () => {
    cluster = await clusters.start({keepers: 1, replicas: 1})
    const keeper = cluster.keepers[0]!
    const dir = cluster.dataDirOf(keeper)
    await keeper.stop('SIGKILL')
    await writeFile(join(dir, 'tmp', 'deadbeef.part'), 'half an upload')
    await writeFile(join(dir, 'blobs', 'orphanBlob123'), 'a blob whose description was never written')
    await cluster.addKeeper(dir)
    assert.deepEqual(await readdir(join(dir, 'tmp')), [])
    assert.deepEqual(await readdir(join(dir, 'blobs')), [])
  })

  test('a keeper whose data dir became read-only refuses uploads with a clear error, and put goes to another keeper', async (t) => {
    cluster = await clusters.start({keepers: 2, replicas: 1})
    const [broken, healthy] = cluster.keepers as [ServerProcess, ServerProcess]
    // The healthy keeper holds a file, so the master, which prefers keepers that hold fewer bytes,
    // offers the broken one first.
    const body = Buffer.from('a file for the healthy keeper')
    const sha256 = createHash('sha256').update(body).digest('hex')
    const ticket = await cluster.masterJson<{uploadId: string; keeper: {url: string}; grant: string}>('/uploads', {
      method: 'POST',
      headers: {'content-type': 'application/json'},
      body: JSON.stringify({name: 'ballast.bin', size: body.length, sha256, exclude: [broken.id]}),
    })
    const stored = await fetch(`${ticket.body.keeper.url}/files/ballast.bin?upload=${ticket.body.uploadId}`, {method: 'PUT', headers: {'x-dfs-sha256': sha256, [GRANT_HEADER]: ticket.body.grant}, body})
    assert.equal(stored.status, 201)
    const running = cluster
    await waitFor('the master to know what the healthy keeper holds', async () => (await running.keeperStatus()).find((keeper) => keeper.id === healthy.id)!.storedBytes > 0)

    const tmp = join(cluster.dataDirOf(broken), 'tmp')
    await whileImmutable(t, tmp, async () => {
      const sources = await Promise.all([1, 2, 3, 4].map(async (index) => {
        const path = join(work(), `ro-${index}.bin`)
        return {path, sha256: await randomFile(path, 256 * 1024)}
      }))
      const put = await cluster.dfsJson<Array<{name: string; keeper: string}>>(['put', ...sources.map((source) => source.path)])
      assert.ok(put.every((file) => file.keeper === healthy.id), JSON.stringify(put))
      // The broken keeper was offered an upload and refused it: the put went elsewhere after a 507.
      assert.ok(broken.logs.some((line) => line.includes('DFS_ERR_INSUFFICIENT_STORAGE')), broken.logs.join('\n'))
      for (const source of sources) {
        const out = `${source.path}.copy`
        assert.equal((await cluster.dfs(['get', source.path.split('/').pop()!, '-o', out])).code, 0)
        assert.equal(await sha256File(out), source.sha256)
      }

      // Straight to the broken keeper: a 5xx JSON error that says why.
      const direct = await fetch(`${cluster.masterUrl}/uploads`, {
        method: 'POST',
        headers: {'content-type': 'application/json', ...bearer(cluster.token)},
        body: JSON.stringify({name: 'direct.bin', size: 3, sha256: 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad', exclude: [healthy.id]}),
      }).then((response) => response.json() as Promise<{uploadId: string; grant: string}>)
      const response = await fetch(`${broken.url}/files/direct.bin?upload=${direct.uploadId}`, {
        method: 'PUT',
        headers: {'x-dfs-sha256': 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad', [GRANT_HEADER]: direct.grant},
        body: 'abc',
      })
      assert.equal(response.status, 507)
      const error = (await response.json()) as {error: string; message: string}
      assert.equal(error.error, 'DFS_ERR_INSUFFICIENT_STORAGE')
      assert.match(error.message, /cannot write to its disk/)
    })
  })

  test('master killed during uploads: each put either completes and is listed, or fails with a clear error; nothing half-recorded', async () => {
    cluster = await clusters.start({keepers: 3})
    const sources = await Promise.all(Array.from({length: 8}, async (_, index) => {
      const path = join(work(), `inflight-${index}.bin`)
      return {name: `inflight-${index}.bin`, path, sha256: await randomFile(path, 24 * MiB)}
    }))
    const puts = sources.map((source) => {
      const child = spawn(process.execPath, [BIN, 'put', source.path, ...cluster.clientFlags], {stdio: ['ignore', 'pipe', 'pipe']})
      let stderr = ''
      child.stderr.on('data', (chunk: Buffer) => (stderr += chunk))
      return once(child, 'close').then(([code]) => ({source, code: code as number, stderr}))
    })
    await waitFor('uploads under way', async () => (await tmpEntries(cluster)).length > 0)
    await cluster.master.stop('SIGKILL')
    await cluster.startMaster()
    const results = await Promise.all(puts)

    const listed = new Map((await cluster.dfsJson<Array<{name: string; sha256: string}>>(['ls'])).map((file) => [file.name, file.sha256]))
    for (const {source, code, stderr} of results) {
      if (code === 0) {
        assert.equal(listed.get(source.name), source.sha256, `${source.name} was confirmed, so it must be listed`)
      } else {
        assert.equal(stderr.trim().split('\n').length, 1, stderr)
        assert.match(stderr, /^Error: /)
      }
    }

    // Every listed file reads back exactly, and no keeper keeps bytes the master does not know.
    for (const [name, sha256] of listed) {
      const out = join(work(), `${name}.copy`)
      const get = await cluster.dfs(['get', name, '-o', out])
      assert.equal(get.code, 0, get.stderr)
      assert.equal(await sha256File(out), sha256)
    }

    const known = new Set([...listed.keys()].map((name) => name))
    const fileIds = new Set(await Promise.all([...known].map(async (name) => (await cluster.stat(name)).fileId)))
    await waitFor('keepers to hold only files the master knows', async () => [...(await blobIds(cluster))].every((id) => fileIds.has(id)))
    assert.deepEqual(await tmpEntries(cluster), [])
  })

  test('a restarted keeper reports its inventory: replicas the master forgot are attached again', async () => {
    cluster = await clusters.start({keepers: 3})
    const source = join(work(), 'remembered.bin')
    const sha256 = await randomFile(source, MiB)
    assert.equal((await cluster.dfs(['put', source, '--wait', 'all'])).code, 0)
    const {fileId} = await cluster.stat('remembered.bin')
    const keeper = cluster.keepers[0]!

    // The master loses the record of one replica (as if its table were restored from an old copy).
    await cluster.master.stop('SIGTERM')
    await keeper.stop('SIGTERM')
    const db = new Database(join(cluster.dir, 'master', 'master.sqlite3'))
    db.prepare('DELETE FROM replicas WHERE keeper_id = ?').run(keeper.id)
    db.close()
    await cluster.startMaster()
    // Over target (3 alive of 2 left in the table)? No: 2 recorded replicas, so the master copies one more …
    await cluster.addKeeper(cluster.dataDirOf(keeper))
    // … and the returning keeper's inventory brings its own replica back into the table.
    await waitFor('the forgotten replica to be attached again', async () => (await cluster.stat('remembered.bin')).replicas.some((replica) => replica.keeper === keeper.id))
    await cluster.waitForReplicas('remembered.bin', 3)
    const stat = await cluster.stat('remembered.bin')
    assert.equal(stat.fileId, fileId)
    for (const replica of stat.replicas) assert.equal(await sha256File(cluster.blobPath(replica.keeper, fileId)), sha256)
  })

  test('a master started on an empty --data does not make keepers destroy files it has no record of', async () => {
    cluster = await clusters.start({keepers: 2, replicas: 2})
    const source = join(work(), 'precious.bin')
    await randomFile(source, MiB)
    assert.equal((await cluster.dfs(['put', source, '--wait', 'all'])).code, 0)
    const before = await blobIds(cluster)
    await cluster.master.stop('SIGKILL')
    await rm(join(cluster.dir, 'master'), {recursive: true, force: true})
    await cluster.startMaster()
    // The keepers find themselves unknown, register again with their inventory, and keep their files.
    await waitFor('both keepers registered with the new master', async () => (await cluster.keeperStatus()).filter((keeper) => keeper.alive).length === 2)
    await waitFor('the new master to notice the unknown files', () => cluster.master.logs.some((line) => line.includes('no record of')))
    assert.deepEqual(await blobIds(cluster), before)
    assert.deepEqual(await cluster.dfsJson(['ls']), [])
  })

  test('put --wait all returns only once every wanted replica is durable and recorded', async () => {
    // One keeper for a target of 3: the upload succeeds at once, and put has to wait for more keepers.
    cluster = await clusters.start({keepers: 1})
    const source = join(work(), 'waited.bin')
    const sha256 = await randomFile(source, 4 * MiB)
    // Put's questions to the master go through a proxy, so the test sees what each answer told it.
    const proxy = await HttpProxy.start(cluster.masterUrl)
    try {
      const put = startDfs(['put', source, '--wait', 'all', '--json', '--master', proxy.url, '--token', cluster.token])
      const polls = () => proxy.seen('GET', '/files/waited.bin').map((exchange) => aliveIn(exchange.answer))
      await whileRunning(put, 'put to see the stored file with one replica, and ask again', () => polls().length >= 2)
      assert.ok(polls().every((alive) => alive === 1), `answers seen so far: ${polls().join(', ')}`)

      await cluster.addKeeper()
      await cluster.addKeeper()
      const result = await put.done
      assert.equal(result.code, 0, result.stderr)
      assert.equal((JSON.parse(result.stdout) as Array<{replicas: number}>)[0]!.replicas, 3)
      // It returned on the first answer that showed all 3, not before …
      const seen = polls()
      assert.equal(seen.at(-1), 3, `answers put saw: ${seen.join(', ')}`)
      assert.ok(seen.slice(0, -1).every((alive) => alive < 3), `answers put saw: ${seen.join(', ')}`)
      // … and they are there: recorded, alive, on three keepers' disks, byte-exact.
      const stat = await cluster.stat('waited.bin')
      assert.equal(stat.replicas.filter((replica) => replica.alive).length, 3)
      for (const replica of stat.replicas) assert.equal(await sha256File(cluster.blobPath(replica.keeper, stat.fileId)), sha256, `replica on ${replica.keeper}`)
    } finally {
      await proxy.close()
    }
  })
})
