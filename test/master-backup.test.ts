import assert from 'node:assert/strict'
import {copyFile, mkdir, readdir, rm, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {describe, test} from 'node:test'

import Database from 'better-sqlite3'

import type {FsckReport} from '../src/lib/protocol.js'
import {clusterPerTest, dfs, randomFile, sha256File, tempDir, waitFor, type RunResult} from './helpers/cluster.js'

const MiB = 1024 * 1024

/** A CLI failure: non-zero exit, one line on stderr, no stack trace. */
function assertOneLineError(result: RunResult, pattern: RegExp): void {
  assert.notEqual(result.code, 0, `expected a failure, got stdout ${result.stdout}`)
  const lines = result.stderr.trim().split('\n')
  assert.equal(lines.length, 1, `expected one line, got:\n${result.stderr}`)
  assert.match(lines[0]!, pattern)
}

/** How many files and replicas a backup's table holds; undefined if it cannot be read. */
function countsIn(backup: string): {files: number; replicas: number} | undefined {
  try {
    const db = new Database(backup, {readonly: true, fileMustExist: true})
    try {
      return db.prepare('SELECT (SELECT COUNT(*) FROM files) AS files, (SELECT COUNT(*) FROM replicas) AS replicas').get() as {files: number; replicas: number}
    } finally {
      db.close()
    }
  } catch {
    return undefined
  }
}

describe('online backups of the master table', () => {
  const clusters = clusterPerTest()

  test('a backup appears on the interval, the oldest beyond --backup-keep go, and a master started from a restored backup serves every file', async () => {
    const backups = join(clusters.work, 'backups')
    const cluster = await clusters.start({keepers: 3, masterArgs: ['--backup-interval', '200ms', '--backup-dir', backups, '--backup-keep', '2']})
    const names = ['one.bin', 'two.bin', 'three.bin']
    const sha256s = new Map<string, string>()
    for (const [index, name] of names.entries()) {
      const path = join(clusters.work, name)
      sha256s.set(name, await randomFile(path, MiB + index))
      assert.equal((await cluster.dfs(['put', path, '--wait', 'all'])).code, 0)
    }

    // A backup taken after the last put and its copies: copied aside at once, before it may be removed as one of the oldest.
    const restored = join(clusters.work, 'restored.sqlite3')
    await waitFor('a backup holding every file with its 3 replicas', async () => {
      const newest = (await readdir(backups)).filter((name) => name.endsWith('.sqlite3')).sort().at(-1)
      if (newest === undefined) return false
      // Read from a copy: a reader beside the backups would leave files of its own there.
      await copyFile(join(backups, newest), restored).catch(() => rm(restored, {force: true}))
      const counts = countsIn(restored)
      return counts?.files === names.length && counts.replicas === 3 * names.length
    })
    await waitFor('backups to be taken again', async () => (await readdir(backups)).filter((name) => name.endsWith('.sqlite3')).length === 2)

    await cluster.master.stop('SIGTERM')
    const kept = await readdir(backups)
    assert.equal(kept.length, 2, `only the last --backup-keep backups, and no temp file: ${kept.join(', ')}`)
    assert.ok(kept.every((name) => /^master-[\dT-]+Z\.sqlite3$/.test(name)), kept.join(', '))

    // The restore of docs/operations.md: the backup becomes the table file of an empty --data.
    const data = join(cluster.dir, 'master')
    await rm(data, {recursive: true, force: true})
    await mkdir(data)
    await copyFile(restored, join(data, 'master.sqlite3'))
    await cluster.startMaster()

    await waitFor('every keeper alive again', async () => (await cluster.keeperStatus()).every((keeper) => keeper.alive))
    const fsck = (await cluster.masterJson<FsckReport>('/fsck')).body
    assert.equal(fsck.status, 'healthy')
    assert.deepEqual(fsck.files.map((file) => file.name).sort(), [...names].sort())
    for (const name of names) {
      const out = join(clusters.work, `${name}.out`)
      const get = await cluster.dfs(['get', name, '-o', out])
      assert.equal(get.code, 0, get.stderr)
      assert.equal(await sha256File(out), sha256s.get(name))
    }
  })

  test('bad backup and recovery flags: one line, non-zero exit, nothing started', async () => {
    const work = await tempDir()
    try {
      const data = join(work, 'never-started')
      const port = ['--port', '0']
      assertOneLineError(await dfs(['master', ...port, '--data', data, '--backup-interval', 'abc', '--backup-dir', join(work, 'b')]), /"abc" is not a duration/)
      assertOneLineError(await dfs(['master', ...port, '--data', data, '--backup-interval', '1h']), /--backup-interval and --backup-dir go together/)
      assertOneLineError(await dfs(['master', ...port, '--data', data, '--backup-dir', join(work, 'b')]), /--backup-interval and --backup-dir go together/)
      assertOneLineError(await dfs(['master', ...port, '--data', data, '--recover-keepers', '2']), /--recover-keepers needs --recover/)
      const notADirectory = join(work, 'a-file')
      await writeFile(notADirectory, '')
      const unwritable = join(notADirectory, 'backups')
      assertOneLineError(await dfs(['master', ...port, '--data', data, '--backup-interval', '1h', '--backup-dir', unwritable]), new RegExp(`--backup-dir ${unwritable} cannot be written: ENOTDIR`))
      assert.deepEqual(await readdir(work), ['a-file'], 'no data dir or backup dir was made')
    } finally {
      await rm(work, {recursive: true, force: true})
    }
  })
})
