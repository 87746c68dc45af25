import assert from 'node:assert/strict'
import {rm, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {after, before, describe, test} from 'node:test'

import {TestCluster, randomFile, sha256File, tempDir, waitFor} from './helpers/cluster.js'

// One cluster for the suite (secure: reads carry grants for the name); every test uses names of its own.
describe('dfs mv renames a file in the master, no bytes move', () => {
  let cluster: TestCluster
  let work: string

  before(async () => {
    cluster = await TestCluster.start({keepers: 2, replicas: 2})
    work = await tempDir()
  })
  after(async () => {
    await cluster.stop()
    await rm(work, {recursive: true, force: true})
  })

  async function put(name: string, content: string) {
    const path = join(work, name.replaceAll('/', '_'))
    await writeFile(path, content)
    const result = await cluster.dfs(['put', path, '--name', name])
    assert.equal(result.code, 0, result.stderr)
  }

  test('the new name serves the same bytes at once, the old one is gone', async () => {
    const source = join(work, 'moved.bin')
    const sha256 = await randomFile(source, 3 * 1024 * 1024 + 17)
    assert.equal((await cluster.dfs(['put', source, '--name', 'moved.bin'])).code, 0)
    const before = await cluster.stat('moved.bin')

    const moved = await cluster.dfsJson<Array<{name: string; to: string; fileId: string}>>(['mv', 'moved.bin', 'videos/renamed.bin', '--json'])
    assert.deepEqual(moved, [{name: 'moved.bin', to: 'videos/renamed.bin', fileId: before.fileId}])

    const after = await cluster.stat('videos/renamed.bin')
    assert.equal(after.fileId, before.fileId, 'the same generation: no bytes moved')
    const out = join(work, 'renamed.copy')
    const got = await cluster.dfs(['get', 'videos/renamed.bin', '-o', out])
    assert.equal(got.code, 0, got.stderr)
    assert.equal(await sha256File(out), sha256)

    const old = await cluster.dfs(['get', 'moved.bin', '-o', join(work, 'old.copy')])
    assert.equal(old.code, 3, old.stderr)
    assert.match(old.stderr, /no file named "moved.bin"/)
    const listed = await cluster.dfsJson<Array<{name: string}>>(['ls', 'videos/'])
    assert.deepEqual(listed.map((file) => file.name), ['videos/renamed.bin'])
  })

  test('onto a taken name, from a missing one, or to an invalid name: refused, nothing changes', async () => {
    await put('first.txt', 'first bytes')
    await put('second.txt', 'second bytes')

    const taken = await cluster.dfs(['mv', 'first.txt', 'second.txt'])
    assert.equal(taken.code, 4, taken.stderr)
    assert.equal(taken.stderr.trim(), 'Error: a file named "second.txt" already exists')

    const missing = await cluster.dfs(['mv', 'nothing.txt', 'third.txt'])
    assert.equal(missing.code, 3, missing.stderr)

    for (const invalid of ['a//b.txt', '../x.txt']) {
      const refused = await cluster.dfs(['mv', 'first.txt', invalid])
      assert.equal(refused.code, 2, refused.stderr)
      assert.equal(refused.stderr.trim().split('\n').length, 1, refused.stderr)
    }

    // The server refuses an invalid name too, not only the CLI.
    const raw = await cluster.masterJson<{error: string}>(`/files/first.txt/move`, {method: 'POST', headers: {'content-type': 'application/json'}, body: JSON.stringify({to: 'a//b.txt'})})
    assert.ok(raw.status >= 400 && raw.status < 500, `status ${raw.status}`)

    assert.equal((await cluster.dfs(['get', 'first.txt', '-o', '-'])).stdout, 'first bytes')
    assert.equal((await cluster.dfs(['get', 'second.txt', '-o', '-'])).stdout, 'second bytes')
    const names = (await cluster.dfsJson<Array<{name: string}>>(['ls'])).map((file) => file.name)
    assert.ok(names.includes('first.txt') && names.includes('second.txt') && !names.includes('third.txt'), names.join(', '))
  })

  test('a keeper that restarts after a rename still counts as holding the file', async () => {
    await put('restarted.txt', 'kept bytes')
    await cluster.waitForReplicas('restarted.txt', 2)
    await cluster.dfs(['mv', 'restarted.txt', 'restarted-renamed.txt'])
    const victim = cluster.keepers[0]!
    const dataDir = cluster.dataDirOf(victim)
    await victim.stop()
    cluster.keepers.splice(0, 1)
    const back = await cluster.addKeeper(dataDir)
    await waitFor('the returning keeper to be counted as a holder again', async () => {
      const info = await cluster.stat('restarted-renamed.txt')
      return info.replicas.filter((replica) => replica.alive).length === 2 && info.replicas.some((replica) => replica.keeper === back.id && replica.alive)
    })
    assert.equal((await cluster.dfs(['get', 'restarted-renamed.txt', '-o', '-'])).stdout, 'kept bytes')
  })
})
