import assert from 'node:assert/strict'
import {describe, test} from 'node:test'

import type {InventoryItem} from '../src/lib/protocol.js'
import {lateVerdict, resolveInventories, type Sighting} from '../src/roles/master/recovery.js'

const A = 'a'.repeat(64)
const B = 'b'.repeat(64)

function seen(keeperId: string, item: Partial<InventoryItem> & {fileId: string}): Sighting {
  return {keeperId, item: {name: 'doc', size: 10, sha256: A, ...item}}
}

describe('the rules that rebuild a table from inventories (pure)', () => {
  test('one file on three keepers: one file with three replicas, its creation time kept', () => {
    const {files, setAside} = resolveInventories(['k1', 'k2', 'k3'].map((keeper) => seen(keeper, {fileId: 'f1', createdAt: 5})))
    assert.deepEqual(setAside, [])
    assert.deepEqual(files, [{file: {fileId: 'f1', name: 'doc', size: 10, sha256: A, createdAt: 5}, replicas: ['k1', 'k2', 'k3'].map((keeperId) => ({keeperId}))}])
  })

  test('one file id described otherwise by one keeper of three: the majority wins, the other is set aside', () => {
    const {files, setAside} = resolveInventories([seen('k1', {fileId: 'f1'}), seen('k2', {fileId: 'f1', sha256: B}), seen('k3', {fileId: 'f1'})])
    assert.deepEqual(files.map(({file, replicas}) => [file.sha256, replicas.map((replica) => replica.keeperId)]), [[A, ['k1', 'k3']]])
    assert.deepEqual(setAside.map(({keeperId, sha256}) => [keeperId, sha256]), [['k2', B]])
    assert.match(setAside[0]!.reason, /outvoted/)
  })

  test('one file id described two ways by as many keepers: no majority, all of it set aside', () => {
    const {files, setAside} = resolveInventories([seen('k1', {fileId: 'f1'}), seen('k2', {fileId: 'f1', size: 11})])
    assert.deepEqual(files, [])
    assert.deepEqual(setAside.map(({keeperId}) => keeperId).sort(), ['k1', 'k2'])
    assert.match(setAside[0]!.reason, /no majority/)
  })

  test('two generations of a name: the newest wins; one without a creation time is older than any with one', () => {
    const newest = resolveInventories([seen('k1', {fileId: 'old', createdAt: 100}), seen('k2', {fileId: 'new', createdAt: 200}), seen('k3', {fileId: 'old', createdAt: 100})])
    assert.deepEqual(newest.files.map(({file}) => file.fileId), ['new'], 'the newer generation, though fewer keepers hold it')
    assert.deepEqual(newest.setAside.map(({fileId, keeperId}) => [fileId, keeperId]), [['old', 'k1'], ['old', 'k3']])
    assert.match(newest.setAside[0]!.reason, /older generation of "doc" than new/)

    const undated = resolveInventories([seen('k1', {fileId: 'legacy'}), seen('k2', {fileId: 'dated', createdAt: 1})])
    assert.deepEqual(undated.files.map(({file}) => file.fileId), ['dated'])
  })

  test('equal creation times: the generation more keepers hold, then the smaller file id', () => {
    const held = resolveInventories([seen('k1', {fileId: 'x', createdAt: 7}), seen('k2', {fileId: 'y', createdAt: 7}), seen('k3', {fileId: 'y', createdAt: 7})])
    assert.deepEqual(held.files.map(({file}) => file.fileId), ['y'])
    const id = resolveInventories([seen('k1', {fileId: 'y'}), seen('k2', {fileId: 'x'})])
    assert.deepEqual(id.files.map(({file}) => file.fileId), ['x'])
  })

  test('a file reported after the table was built: new name, newer generation, or set aside', () => {
    const recorded = {fileId: 'r', name: 'doc', size: 10, sha256: A, createdAt: 100}
    assert.equal(lateVerdict(seen('k9', {fileId: 'n', createdAt: 1}).item, undefined), 'new')
    assert.equal(lateVerdict(seen('k9', {fileId: 'n', createdAt: 101}).item, recorded), 'replaces')
    assert.equal(lateVerdict(seen('k9', {fileId: 'n', createdAt: 99}).item, recorded), 'aside')
    assert.equal(lateVerdict(seen('k9', {fileId: 'n'}).item, {...recorded, createdAt: 0}), 'aside', 'an undated late generation never replaces')
  })
})
