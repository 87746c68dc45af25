// The chaos run's oracle (test/chaos/model.ts) on hand-written histories: it must accept every
// answer some order of the racing operations explains, and refuse wrong bytes, stale reads, lost
// files and double creations.

import assert from 'node:assert/strict'
import {describe, test} from 'node:test'

import {Model, type ListedFile, type OpRecord, type Outcome} from './chaos/model.js'

const A = 'a'.repeat(64)
const B = 'b'.repeat(64)
const C = 'c'.repeat(64)

/** Builds a history on one name; each op is [kind, start, end, outcome, sha256?]. */
function history(ops: Array<[OpRecord['kind'], number, number | undefined, Outcome | undefined, string?]>, name = 'x.bin'): {model: Model; records: OpRecord[]} {
  const model = new Model()
  const records = ops.map(([kind, start, end, outcome, sha256], index) => {
    const record = model.begin({worker: index, kind, name, ...(kind === 'put' ? {sha256, size: 10, label: `${name}#${index}`} : {})}, start)
    if (end !== undefined && outcome !== undefined) model.finish(record, end, outcome, kind === 'get' && outcome === 'ok' ? {sha256} : {})
    return record
  })
  return {model, records}
}

const listed = (sha256: string, name = 'x.bin'): Map<string, ListedFile> => new Map([[name, {name, fileId: 'f1', size: 10, sha256}]])

describe('the chaos oracle', () => {
  test('a get after a confirmed put must read it, not an older generation or foreign bytes', () => {
    const {model, records} = history([
      ['put', 0, 10, 'ok', A],
      ['rm', 20, 30, 'ok'],
      ['put', 40, 50, 'ok', B],
      ['get', 60, 70, 'ok', B],
      ['get', 60, 70, 'ok', A],
      ['get', 60, 70, 'ok', C],
    ])
    assert.equal(model.checkRead(records[3]!), undefined)
    assert.equal(model.checkRead(records[4]!)?.kind, 'get-stale')
    assert.equal(model.checkRead(records[5]!)?.kind, 'get-wrong-bytes')
  })

  test('racing puts: a get overlapping both may read either, a later one only the winner', () => {
    const {model, records} = history([
      ['put', 0, 20, 'ok', A],
      ['put', 5, 25, 'failed', B],
      ['get', 10, 30, 'ok', B],
      ['get', 40, 50, 'ok', A],
      ['get', 60, 70, 'ok', B],
    ])
    assert.equal(model.checkRead(records[2]!), undefined)
    assert.equal(model.checkRead(records[3]!), undefined)
    // A won (its put succeeded, the later get read it) and no rm ever came: B cannot be current.
    assert.equal(model.checkRead(records[4]!)?.kind, 'get-stale')
    // With an rm after A, B's failed put may have taken effect after it.
    const afterRm = history([
      ['put', 0, 20, 'ok', A],
      ['put', 5, 25, 'failed', B],
      ['rm', 30, 35, 'ok'],
      ['get', 60, 70, 'ok', B],
    ])
    assert.equal(afterRm.model.checkRead(afterRm.records[3]!), undefined)
  })

  test('a get overlapping an rm may find the file or not; after the rm it must not', () => {
    const {model, records} = history([
      ['put', 0, 10, 'ok', A],
      ['rm', 20, 40, 'ok'],
      ['get', 30, 50, 'ok', A],
      ['get', 30, 50, 'absent'],
      ['get', 50, 60, 'ok', A],
    ])
    assert.equal(model.checkRead(records[2]!), undefined)
    assert.equal(model.checkAbsent(records[3]!), undefined)
    assert.equal(model.checkRead(records[4]!)?.kind, 'get-stale')
  })

  test('"no such file" after a confirmed put with no rm in between is a missing file', () => {
    const {model, records} = history([
      ['put', 0, 10, 'ok', A],
      ['rm', 5, 15, 'absent'],
      ['get', 20, 30, 'absent'],
    ])
    assert.equal(model.checkAbsent(records[2]!)?.kind, 'confirmed-file-missing')
    // An rm still running (or whose outcome is unknown) may have removed it.
    const racing = history([
      ['put', 0, 10, 'ok', A],
      ['rm', 5, undefined, undefined],
      ['get', 20, 30, 'absent'],
    ])
    assert.equal(racing.model.checkAbsent(racing.records[2]!), undefined)
  })

  test('rm succeeding on a name that cannot have existed', () => {
    const {model, records} = history([
      ['put', 0, 10, 'ok', A],
      ['rm', 20, 30, 'ok'],
      ['rm', 40, 50, 'ok'],
    ])
    assert.equal(model.checkRemoved(records[1]!), undefined)
    assert.equal(model.checkRemoved(records[2]!)?.kind, 'rm-of-nothing')
  })

  test('two confirmed puts with no rm that could separate them', () => {
    const {model} = history([
      ['put', 0, 10, 'ok', A],
      ['put', 20, 30, 'ok', B],
    ])
    assert.deepEqual(
      model.checkDoubleCreates().map((finding) => finding.kind),
      ['double-create'],
    )
    const separated = history([
      ['put', 0, 10, 'ok', A],
      ['rm', 5, 25, 'failed'],
      ['put', 20, 30, 'ok', B],
    ])
    assert.deepEqual(separated.model.checkDoubleCreates(), [])
  })

  test('the final state: the last confirmed generation, lost files, resurrected and unknown ones', () => {
    const ops: Array<[OpRecord['kind'], number, number | undefined, Outcome | undefined, string?]> = [
      ['put', 0, 10, 'ok', A],
      ['rm', 20, 30, 'ok'],
      ['put', 40, 50, 'ok', B],
      ['put', 60, 70, 'failed', C],
    ]
    const judge = (listing: Map<string, ListedFile>) => {
      const verdict = history(ops).model.judgeFinal(listing)
      return {kinds: verdict.findings.map((finding) => finding.kind), lost: verdict.lost, present: verdict.present.length}
    }

    assert.deepEqual(judge(listed(B)), {kinds: [], lost: 0, present: 1})
    assert.deepEqual(judge(listed(A)), {kinds: ['stale-file'], lost: 1, present: 0})
    assert.deepEqual(judge(listed(C)), {kinds: ['stale-file'], lost: 1, present: 0})
    assert.deepEqual(judge(new Map()), {kinds: ['lost-file'], lost: 1, present: 0})
    assert.deepEqual(judge(new Map([...listed(B), ...listed(A, 'never.bin')])), {kinds: ['unexpected-file'], lost: 0, present: 1})
    // After an rm that failed, the name may be gone or hold what a failed put sent.
    const unsure = history([
      ['put', 0, 10, 'ok', A],
      ['rm', 20, 30, 'failed'],
      ['put', 40, 50, 'failed', B],
    ]).model
    assert.deepEqual(unsure.judgeFinal(new Map()).findings, [])
    assert.deepEqual(unsure.judgeFinal(listed(B)).findings, [])
    assert.deepEqual(unsure.judgeFinal(listed(A)).findings, [])
  })
})
