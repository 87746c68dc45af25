import assert from 'node:assert/strict'
import {readdir, rm, stat} from 'node:fs/promises'
import {join} from 'node:path'
import {after, test} from 'node:test'

import {isRunning, readClusterState} from '../src/roles/cluster/local-cluster.js'
import {FIXTURES, SAMPLES, dfs, dfsJson, sha256File, tempDir, waitFor} from './helpers/cluster.js'
import {clusterToken, clusterUp, killClustersLeft} from './helpers/cluster-up-process.js'
import {holdUpload} from './helpers/held-upload.js'

const MiB = 1024 * 1024
const dirs: string[] = []
after(async () => {
  await killClustersLeft()
  for (const dir of dirs) await rm(dir, {recursive: true, force: true})
})

test('a second Ctrl-C during the graceful stop kills every child at once and exits non-zero; the next cluster up on the dir works', async () => {
  const dir = await tempDir('dfs-cluster-up-')
  dirs.push(dir)
  const first = await clusterUp(dir, 2)
  // --wait all: no copy of it is still under way into a keeper's tmp/ below, which would pass for the held upload.
  const put = await dfs(['put', join(FIXTURES, 'sample_2.mp4'), '--wait', 'all', '--master', first.masterUrl])
  assert.equal(put.code, 0, put.stderr)

  // An upload held half-way keeps its keeper in its graceful stop for as long as the test wants.
  const held = await holdUpload(first.masterUrl, await clusterToken(dir), 'held.bin')
  const keeperName = first.keepers.find((keeper) => keeper.id === held.keeper.id)!.name
  // Its first MiB on the keeper's disk: the upload is surely under way there (a file of any size in
  // tmp/ could be a copy's, or the readiness probe's, while the held request has not arrived yet).
  const tmp = join(dir, keeperName, 'tmp')
  await waitFor('the held upload\'s first MiB on its keeper', async () => {
    for (const entry of await readdir(tmp)) if ((await stat(join(tmp, entry)).catch(() => undefined))?.size === MiB) return true
    return false
  })

  first.child.kill('SIGINT')
  await waitFor('the cluster to be stopping its keepers', () => /Stopping the keepers/.test(first.output()))
  // The busy keeper refuses new requests (it is stopping) but is still running: the stop is under way.
  await waitFor('the busy keeper to refuse new requests', async () => {
    try {
      return (await fetch(`${held.keeper.url}/health`)).status === 503
    } catch (error) {
      return (error as {cause?: {code?: string}}).cause?.code === 'ECONNREFUSED'
    }
  })
  const state = await readClusterState(dir)
  const busyPid = state?.nodes.find((node) => node.name === keeperName)?.pid
  if (busyPid === undefined || !isRunning(busyPid)) {
    const answer = await Promise.race([held.response, new Promise((resolve) => setTimeout(resolve, 1000, 'no answer yet'))])
    assert.fail(`the busy keeper is no longer running; the held upload got: ${JSON.stringify(answer)}; cluster up said: ${first.output()}`)
  }

  assert.doesNotMatch(first.output(), /cluster stopped/)

  first.child.kill('SIGINT')
  const exit = await first.exit
  assert.deepEqual(exit, {code: 130, signal: null}, first.output())
  assert.match(first.output(), /stopping now: killing every process of the cluster/)
  assert.match(first.output(), /cluster killed/)
  // Killed, not let finish its upload: the stop did not wait for it.
  assert.match(first.output(), new RegExp(`${keeperName} was killed`))
  assert.doesNotMatch(first.output(), /cluster stopped/)
  assert.deepEqual(first.childPids.filter((pid) => isRunning(pid)), [], 'no master or keeper outlives cluster up')
  assert.equal(await readClusterState(dir), undefined, 'cluster.json is cleared once every child is gone')
  const answer = await held.response
  assert.ok('error' in answer, `the held upload was cut, not answered: ${JSON.stringify(answer)}`)

  // The killed cluster's data is whole: the same dir starts again and serves the file stored before.
  const second = await clusterUp(dir, 2)
  assert.deepEqual(second.keepers.map((keeper) => keeper.id).sort(), first.keepers.map((keeper) => keeper.id).sort())
  const listed = await dfsJson<Array<{name: string}>>(['ls', '--master', second.masterUrl])
  assert.deepEqual(listed.map((file) => file.name), ['sample_2.mp4'], 'the cut upload was never recorded')
  const out = join(dir, 'copy.mp4')
  const got = await dfs(['get', 'sample_2.mp4', '-o', out, '--master', second.masterUrl])
  assert.equal(got.code, 0, got.stderr)
  assert.equal(await sha256File(out), SAMPLES['sample_2.mp4'].sha256)
  second.child.kill('SIGINT')
  assert.deepEqual(await second.exit, {code: 0, signal: null}, second.output())
})
