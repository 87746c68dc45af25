// dfs ls reads the master's listing a page at a time (MAX_PAGE_SIZE files) and prints each as it
// arrives. Over more files than one page: every file once, in the master's order, under one
// header; --json gives exactly the files the unpaged GET /files gives; a glob selects across pages.

import assert from 'node:assert/strict'
import {mkdir, rm, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {after, before, describe, test} from 'node:test'

import {MAX_PAGE_SIZE, type FileSummary} from '../src/lib/protocol.js'
import {TestCluster, bearer, json, tempDir} from './helpers/cluster.js'

const COUNT = MAX_PAGE_SIZE + 5

describe(`dfs ls of ${COUNT} files, more than one page of the master's listing`, () => {
  let cluster: TestCluster
  let work: string
  const names = Array.from({length: COUNT}, (_, index) => `many/f-${String(index).padStart(4, '0')}.txt`)

  before(async () => {
    cluster = await TestCluster.start({keepers: 1, replicas: 1})
    work = await tempDir()
    await mkdir(join(work, 'many'))
    for (const [index, name] of names.entries()) await writeFile(join(work, name), `file ${index}\n`)
    const put = await cluster.dfs(['put', join(work, 'many'), '--recursive', '--quiet'])
    assert.equal(put.code, 0, put.stderr)
  })
  after(async () => {
    await cluster.stop()
    await rm(work, {recursive: true, force: true})
  })

  test('the table has one header and every file once, in order', async () => {
    const ls = await cluster.dfs(['ls'])
    assert.equal(ls.code, 0, ls.stderr)
    const [header, ...rows] = ls.stdout.trimEnd().split('\n')
    assert.match(header!, /^NAME +SIZE +REPLICAS +CREATED$/)
    assert.deepEqual(rows.map((row) => row.split(/ +/)[0]), names)
  })

  test('--json is the whole listing the master gives unpaged', async () => {
    const listed = await cluster.dfsJson<FileSummary[]>(['ls'])
    const {status, body} = await json<{files: FileSummary[]}>(`${cluster.masterUrl}/files`, {headers: bearer(cluster.token)})
    assert.equal(status, 200)
    assert.equal(listed.length, COUNT)
    assert.deepEqual(listed, body.files)
  })

  test('a glob selects from every page', async () => {
    const listed = await cluster.dfsJson<FileSummary[]>(['ls', 'many/f-*4.txt'])
    assert.deepEqual(listed.map((file) => file.name), names.filter((name) => name.endsWith('4.txt')))
  })
})
