import assert from 'node:assert/strict'
import {spawn} from 'node:child_process'
import {once} from 'node:events'
import {mkdir, readFile, readdir, rename, rmdir, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {createInterface} from 'node:readline'
import {describe, test} from 'node:test'

import {GRANT_HEADER} from '../src/lib/grants.js'
import {BIN, clusterPerTest, randomFile, sha256File, waitFor, type ServerProcess} from './helpers/cluster.js'
import {blobIds} from './helpers/keeper-disk.js'

const MiB = 1024 * 1024

/** The master's log lines of a keeper's registrations. */
function registrations(master: ServerProcess, keeperId: string): string[] {
  return master.logs.filter((line) => line.includes(`keeper ${keeperId} registered at`))
}

/** The number of files a keeper reports in its next registration (after `before` of them), from the master's log. */
async function nextRegisteredFiles(master: ServerProcess, keeperId: string, before: number): Promise<number> {
  // The master logs on its own stderr; that line may reach this process after the keeper's ready line.
  const line = await waitFor('the registration in the master\'s log', () => registrations(master, keeperId)[before])
  return Number(/with (\d+) files/.exec(line)![1])
}

/** Runs `dfs keeper` until it exits or says it is listening (then it is killed): its exit code and output. */
async function tryStartKeeper(args: string[]): Promise<{listening: boolean; code: number | null; stderr: string[]}> {
  const child = spawn(process.execPath, [BIN, 'keeper', ...args], {stdio: ['ignore', 'pipe', 'pipe']})
  const stderr: string[] = []
  createInterface({input: child.stderr}).on('line', (line) => stderr.push(line))
  let listening = false
  createInterface({input: child.stdout}).on('line', (line) => {
    if (!/listening on/.test(line)) return
    listening = true
    child.kill('SIGKILL')
  })
  const [code] = (await once(child, 'close')) as [number | null]
  return {listening, code, stderr}
}

describe('a keeper starting on a blob whose description is bad', () => {
  const clusters = clusterPerTest()

  test('a description found invalid: the blob is quarantined, neither served nor reported, and the master copies the file back', async (t) => {
    // Three keepers for three replicas: while the victim is away no other keeper can take a copy,
    // so the copy that comes back to it later is the master's answer to its inventory.
    const cluster = await clusters.start({keepers: 3, masterArgs: ['--heartbeat-timeout', '6s']})
    const source = join(clusters.work, 'described.bin')
    const sha256 = await randomFile(source, 2 * MiB)
    assert.equal((await cluster.dfs(['put', source, '--wait', 'all'])).code, 0)
    const info = await cluster.stat('described.bin')
    assert.equal(info.replicas.length, 3)
    const [victim, ...others] = info.replicas.map((replica) => cluster.keeperById(replica.keeper))
    const dir = cluster.dataDirOf(victim!)
    await victim!.stop('SIGKILL')
    const garbage = '{"fileId": "' + info.fileId + '", "name": "described.bin", "si'
    await writeFile(`${cluster.blobPath(victim!.id, info.fileId)}.json`, garbage)
    // The master takes the keeper's id from a new process only once the old one is dead to it
    // (security-members.test.ts): waited for here, before the others are paused.
    await waitFor('the killed keeper dead at the master', async () => (await cluster.keeperStatus()).some((keeper) => keeper.id === victim!.id && !keeper.alive))

    // The other holders are paused so that no repair copy can land while the restarted keeper is
    // looked at (should the pause outlast the heartbeat timeout, they rejoin when resumed);
    // SIGKILL at the end of the test ends them paused or not.
    for (const other of others) other!.child.kill('SIGSTOP')
    t.after(() => void others.forEach((other) => other!.child.kill('SIGCONT')))
    const registered = registrations(cluster.master, victim!.id).length
    const restarted = await cluster.addKeeper(dir)
    assert.equal(restarted.id, victim!.id)

    const quarantine = join(dir, 'quarantine')
    assert.deepEqual((await readdir(quarantine)).sort(), [info.fileId, `${info.fileId}.json`])
    assert.equal(await sha256File(join(quarantine, info.fileId)), sha256, 'the quarantined bytes are the replica, untouched')
    assert.equal(await readFile(join(quarantine, `${info.fileId}.json`), 'utf8'), garbage)
    assert.deepEqual(await blobIds(dir), [])
    await waitFor('the quarantine in the keeper\'s log', () => restarted.logs.some((line) => line.includes(`blob ${info.fileId} quarantined`)))
    assert.equal(await nextRegisteredFiles(cluster.master, restarted.id, registered), 0, 'the quarantined blob is not in the inventory')
    const grant = await cluster.grant('read', restarted.id, {name: 'described.bin', fileId: info.fileId})
    assert.equal((await fetch(`${restarted.url}/files/described.bin?fileId=${info.fileId}`, {headers: {[GRANT_HEADER]: grant}})).status, 404)
    assert.ok(!(await cluster.stat('described.bin')).replicas.some((replica) => replica.keeper === restarted.id))

    for (const other of others) other!.child.kill('SIGCONT')
    await cluster.waitForReplicas('described.bin', 3)
    for (const replica of (await cluster.stat('described.bin')).replicas) {
      assert.equal(await sha256File(cluster.blobPath(replica.keeper, info.fileId)), sha256, `replica on ${replica.keeper}`)
    }

    const out = join(clusters.work, 'described.copy')
    assert.equal((await cluster.dfs(['get', 'described.bin', '-o', out])).code, 0)
    assert.equal(await sha256File(out), sha256)
    assert.equal(await sha256File(join(quarantine, info.fileId)), sha256, 'quarantine is left to the operator')
  })

  test('a description that cannot be read: the keeper refuses to start with one line naming it, and removes nothing', async () => {
    const cluster = await clusters.start({keepers: 1, replicas: 1})
    const source = join(clusters.work, 'unreadable.bin')
    const sha256 = await randomFile(source, MiB)
    assert.equal((await cluster.dfs(['put', source])).code, 0)
    const {fileId} = await cluster.stat('unreadable.bin')
    const keeper = cluster.keepers[0]!
    const dir = cluster.dataDirOf(keeper)
    await keeper.stop('SIGKILL')

    // A description that is a directory fails to read (EISDIR) as one on a failing disk (EIO) would.
    const description = `${cluster.blobPath(keeper.id, fileId)}.json`
    await rename(description, join(clusters.work, 'description.json'))
    await mkdir(description)
    const attempt = await tryStartKeeper(['--master', cluster.masterUrl, '--data', dir])
    assert.equal(attempt.listening, false, 'the keeper must not start on a description it cannot read')
    assert.equal(attempt.code, 1)
    assert.equal(attempt.stderr.length, 1, attempt.stderr.join('\n'))
    assert.match(attempt.stderr[0]!, new RegExp(`^Error: cannot read \\S*${fileId}\\.json \\(EISDIR\\).*removed nothing`))
    assert.deepEqual(await blobIds(dir), [fileId])
    assert.equal(await sha256File(cluster.blobPath(keeper.id, fileId)), sha256)
    assert.deepEqual(await readdir(join(dir, 'quarantine')).catch(() => []), [])

    // Once the disk reads again, the keeper starts with the replica and serves it.
    await rmdir(description)
    await rename(join(clusters.work, 'description.json'), description)
    const registered = registrations(cluster.master, keeper.id).length
    const restarted = await cluster.addKeeper(dir)
    assert.equal(await nextRegisteredFiles(cluster.master, restarted.id, registered), 1)
    await waitFor('the replica alive again', async () => (await cluster.stat('unreadable.bin')).replicas.some((replica) => replica.alive))
    const out = join(clusters.work, 'unreadable.copy')
    assert.equal((await cluster.dfs(['get', 'unreadable.bin', '-o', out])).code, 0)
    assert.equal(await sha256File(out), sha256)
  })
})
