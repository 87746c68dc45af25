import assert from 'node:assert/strict'
import {describe, test} from 'node:test'

import fc from 'fast-check'

import {holdersSettled, isSettled, tallyOf, pickPipeline, pickUploadTarget, placementGoal, planRepairs, planTrims, standingOf, type FileReplicas, type KeeperLoad} from '../src/roles/master/placement.js'

const GiB = 1024 ** 3
const keeper = (id: string, overrides: Partial<KeeperLoad> = {}): KeeperLoad => ({id, alive: true, load: 0, storedBytes: 0, freeBytes: 10 * GiB, zone: 'z', draining: false, ...overrides})
const file = (fileId: string, holders: string[], size = 100): FileReplicas => ({fileId, name: `${fileId}.mp4`, size, holders})

describe('pickUploadTarget: the least-loaded alive keeper', () => {
  test('prefers fewer transfers, then fewer stored bytes', () => {
    const keepers = [keeper('a', {load: 2}), keeper('b', {load: 1, storedBytes: 500}), keeper('c', {load: 1, storedBytes: 100})]
    assert.equal(pickUploadTarget(keepers, 10)?.id, 'c')
  })

  test('skips dead keepers, excluded keepers and keepers without room', () => {
    const keepers = [keeper('a', {alive: false}), keeper('b', {freeBytes: 5}), keeper('c', {load: 9}), keeper('d')]
    assert.equal(pickUploadTarget(keepers, 10, new Set(['d']))?.id, 'c')
    assert.equal(pickUploadTarget([keeper('a', {alive: false})], 10), undefined)
  })
})

describe('pickPipeline: the keepers after the first in a write pipeline', () => {
  test('as many as make the target with the first, zones the chain lacks first, then by load', () => {
    const keepers = [keeper('a', {zone: 'z1'}), keeper('b', {zone: 'z1'}), keeper('c', {zone: 'z1', load: 1}), keeper('d', {zone: 'z2', load: 5})]
    assert.deepEqual(
      pickPipeline(keepers, 10, keepers[0]!, 3).map((chosen) => chosen.id),
      ['d', 'b'],
    )
  })

  test('none beyond the keepers that take replicas: dead, draining, excluded and full ones are left out', () => {
    const keepers = [keeper('a'), keeper('b', {alive: false}), keeper('c', {draining: true}), keeper('d', {freeBytes: 5}), keeper('e'), keeper('f')]
    assert.deepEqual(
      pickPipeline(keepers, 10, keepers[0]!, 3, new Set(['f'])).map((chosen) => chosen.id),
      ['e'],
    )
    assert.deepEqual(pickPipeline(keepers, 10, keepers[0]!, 1), [])
  })
})

describe('planRepairs: copies that bring files back to their target', () => {
  const base = {inFlight: new Map<string, Set<string>>(), maxPerDestination: 4}

  test('plans target minus alive replicas copies, to distinct keepers that lack the file', () => {
    const tasks = planRepairs({...base, files: [file('f', ['a'])], keepers: ['a', 'b', 'c', 'd'].map((id) => keeper(id)), target: 3})
    assert.equal(tasks.length, 2)
    assert.ok(tasks.every((task) => task.source === 'a'))
    assert.equal(new Set(tasks.map((task) => task.destination)).size, 2)
    assert.ok(tasks.every((task) => task.destination !== 'a'))
  })

  test('repairs the most endangered files first', () => {
    const keepers = ['a', 'b', 'c'].map((id) => keeper(id))
    const tasks = planRepairs({...base, files: [file('two', ['a', 'b']), file('one', ['c'])], keepers, target: 3})
    assert.equal(tasks[0]!.fileId, 'one')
    assert.equal(tasks[0]!.aliveReplicas, 1)
  })

  test('a long backlog: the fewest replicas first wherever they stand, equals in the order given, and only as many copies as destinations take', () => {
    const keepers = ['a', 'b', 'c', 'd'].map((id) => keeper(id))
    // 1,000 files at two of three replicas, then two at one: a table's order, not by urgency or name.
    const files = [...Array.from({length: 1000}, (_, index) => file(`two-${index}`, ['a', 'b'])), file('z-one', ['c']), file('a-one', ['c'])]
    const tasks = planRepairs({...base, maxPerDestination: 1, files, keepers, target: 3})
    // One copy into each keeper: z-one's two (given first), a-one's one into the last of a, b and d,
    // and c (which holds both) takes the first file at two replicas; the other 999 wait.
    assert.deepEqual(tasks.map((task) => task.fileId), ['z-one', 'z-one', 'a-one', 'two-0'])
    assert.deepEqual(planRepairs({...base, maxPerDestination: 1, inFlight: new Map([['x', new Set(['a', 'b', 'c', 'd'])]]), files, keepers, target: 3}), [])
  })

  test('counts only alive holders, and never copies from or to a dead keeper', () => {
    const keepers = [keeper('a', {alive: false}), keeper('b'), keeper('c'), keeper('d')]
    const tasks = planRepairs({...base, files: [file('f', ['a', 'b', 'c'])], keepers, target: 3})
    assert.deepEqual(tasks.map((task) => [task.source === 'b' || task.source === 'c', task.destination]), [[true, 'd']])
  })

  test('caps the target at the number of alive keepers', () => {
    const tasks = planRepairs({...base, files: [file('f', ['a'])], keepers: [keeper('a'), keeper('b')], target: 3})
    assert.equal(tasks.length, 1)
  })

  test('a file with no alive replica cannot be repaired and plans nothing', () => {
    const tasks = planRepairs({...base, files: [file('f', ['a'])], keepers: [keeper('a', {alive: false}), keeper('b')], target: 3})
    assert.deepEqual(tasks, [])
  })

  test('copies under way count toward the target and their destinations are not chosen again', () => {
    const inFlight = new Map([['f', new Set(['b'])]])
    const tasks = planRepairs({...base, inFlight, files: [file('f', ['a'])], keepers: ['a', 'b', 'c', 'd'].map((id) => keeper(id)), target: 3})
    assert.equal(tasks.length, 1)
    assert.notEqual(tasks[0]!.destination, 'b')
  })

  test('spreads copies over destinations and respects the per-destination limit', () => {
    const files = Array.from({length: 6}, (_, index) => file(`f${index}`, ['a']))
    const keepers = ['a', 'b', 'c', 'd'].map((id) => keeper(id))
    const tasks = planRepairs({...base, maxPerDestination: 2, files, keepers, target: 2})
    const perDestination = new Map<string, number>()
    for (const task of tasks) perDestination.set(task.destination, (perDestination.get(task.destination) ?? 0) + 1)
    assert.deepEqual([...perDestination.values()], [2, 2, 2])
  })

  test('never places a copy on a keeper that still has to delete an old replica of the file', () => {
    const files = [{...file('f', ['a']), excluded: ['b']}]
    const tasks = planRepairs({...base, files, keepers: ['a', 'b', 'c'].map((id) => keeper(id)), target: 3})
    assert.deepEqual(tasks.map((task) => task.destination), ['c'])
  })

  test('copies from a holder no copy of the file failed from, while one is alive', () => {
    // a is the least loaded holder, and the one a copy failed from.
    const keepers = [keeper('a'), keeper('b', {load: 3}), keeper('c')]
    const failedFromA = [{...file('f', ['a', 'b']), failedSources: ['a']}]
    assert.deepEqual(planRepairs({...base, files: failedFromA, keepers, target: 3}).map((task) => task.source), ['b'])
    assert.deepEqual(planRepairs({...base, files: [file('f', ['a', 'b'])], keepers, target: 3}).map((task) => task.source), ['a'])
    // With no other holder alive, the one that failed is still tried.
    const onlyA = [{...file('f', ['a']), failedSources: ['a']}]
    assert.deepEqual(planRepairs({...base, files: onlyA, keepers, target: 3}).map((task) => task.source), ['a', 'a'])
  })

  test('never places a copy on a keeper without room for it', () => {
    const keepers = [keeper('a'), keeper('b', {freeBytes: 10}), keeper('c')]
    const tasks = planRepairs({...base, files: [file('f', ['a'], 1000)], keepers, target: 3})
    assert.deepEqual(tasks.map((task) => task.destination), ['c'])
  })
})

describe('planTrims: surplus replicas', () => {
  test('removes replicas above the target from the most loaded alive holders', () => {
    const keepers = [keeper('a', {load: 5}), keeper('b'), keeper('c'), keeper('d', {load: 1})]
    const tasks = planTrims([file('f', ['a', 'b', 'c', 'd'])], keepers, 3, new Map())
    assert.deepEqual(tasks, [{fileId: 'f', name: 'f.mp4', keeper: 'a'}])
  })

  test('leaves files alone while copies are under way, and ignores dead holders', () => {
    const keepers = [keeper('a', {alive: false}), keeper('b'), keeper('c'), keeper('d')]
    assert.deepEqual(planTrims([file('f', ['a', 'b', 'c', 'd'])], keepers, 3, new Map()), [])
    assert.deepEqual(planTrims([file('g', ['b', 'c', 'd'])], keepers, 2, new Map([['g', new Set(['x'])]])), [])
  })
})

describe('zones: replicas spread over as many zones as there are', () => {
  const base = {inFlight: new Map<string, Set<string>>(), maxPerDestination: 4}
  const zoned = (spec: Record<string, string>, overrides: Record<string, Partial<KeeperLoad>> = {}) =>
    Object.entries(spec).map(([id, zone]) => keeper(id, {zone, ...overrides[id]}))

  test('placementGoal: the target capped at keepers that take copies, the zones capped at that', () => {
    const keepers = zoned({a: 'x', b: 'x', c: 'y', d: 'z'}, {d: {draining: true}})
    assert.deepEqual(placementGoal(keepers, 3), {replicas: 3, zones: 2})
    assert.deepEqual(placementGoal(keepers, 1), {replicas: 1, zones: 1})
    assert.deepEqual(placementGoal(zoned({a: 'x', b: 'y'}, {b: {alive: false}}), 3), {replicas: 1, zones: 1})
  })

  test('a repair copy goes into a zone the file lacks, even onto a busier keeper', () => {
    const keepers = zoned({a: 'x', b: 'x', c: 'x', d: 'y'}, {d: {load: 9}})
    const tasks = planRepairs({...base, files: [file('f', ['a', 'b'])], keepers, target: 3})
    assert.deepEqual(tasks.map((task) => task.destination), ['d'])
  })

  test('copies of a file with one replica go to two zones before a second copy in the same zone', () => {
    const keepers = zoned({a: 'x', b: 'x', c: 'y', d: 'y', e: 'z'}, {e: {load: 5}})
    const tasks = planRepairs({...base, files: [file('f', ['a'])], keepers, target: 3})
    assert.deepEqual(tasks.map((task) => task.destination).sort(), ['c', 'e'])
  })

  test('a file at its count but in one zone gets one copy into another zone, and nothing more', () => {
    const keepers = zoned({a: 'x', b: 'x', c: 'x', d: 'y', e: 'y'}, {e: {load: 1}})
    const tasks = planRepairs({...base, files: [file('f', ['a', 'b', 'c'])], keepers, target: 3})
    assert.deepEqual(tasks.map((task) => [task.destination, task.aliveReplicas]), [['d', 3]])
  })

  test('a file whose zones are covered plans nothing; nor does one whose other zone has no room', () => {
    const keepers = zoned({a: 'x', b: 'x', c: 'y', d: 'y'}, {d: {freeBytes: 1}})
    assert.deepEqual(planRepairs({...base, files: [file('f', ['a', 'b', 'c'])], keepers, target: 3}), [])
    assert.deepEqual(planRepairs({...base, files: [file('g', ['a', 'b'])], keepers: zoned({a: 'x', b: 'x', c: 'y'}, {c: {freeBytes: 1}}), target: 2}), [])
  })

  test('a copy under way into the missing zone settles the spread', () => {
    const keepers = zoned({a: 'x', b: 'x', c: 'x', d: 'y'})
    const inFlight = new Map([['f', new Set(['d'])]])
    assert.deepEqual(planRepairs({...base, inFlight, files: [file('f', ['a', 'b', 'c'])], keepers, target: 3}), [])
  })

  test('a trim takes the surplus from the most crowded zone, never the only replica of a zone', () => {
    const keepers = zoned({a: 'x', b: 'x', c: 'x', d: 'y'}, {d: {load: 9}})
    const tasks = planTrims([file('f', ['a', 'b', 'c', 'd'])], keepers, 3, new Map())
    assert.equal(tasks.length, 1)
    assert.notEqual(tasks[0]!.keeper, 'd')
    const two = planTrims([file('g', ['a', 'b', 'c', 'd'])], keepers, 2, new Map())
    assert.deepEqual(two.map((task) => task.keeper).filter((id) => id === 'd'), [])
    assert.equal(two.length, 2)
  })

  test('isSettled: at its count in enough zones; a file with no alive replica too (nothing can be done)', () => {
    const keepers = new Map(zoned({a: 'x', b: 'x', c: 'y'}, {c: {alive: false}}).map((one) => [one.id, one]))
    const goal = {replicas: 2, zones: 2}
    assert.equal(isSettled(standingOf(['a', 'b'], keepers), new Set(), keepers, goal), false)
    assert.equal(isSettled(standingOf(['c'], keepers), new Set(), keepers, goal), true)
    assert.equal(isSettled(standingOf(['a', 'b'], keepers), new Set(), keepers, {replicas: 2, zones: 1}), true)
  })
})

describe('tallyOf and holdersSettled: the standing of a file from counts alone, as passes over the whole table ask it of every file', () => {
  const ids = ['a', 'b', 'c', 'd', 'e', 'f']
  const cluster = fc.tuple(
    ...ids.map(() => fc.record({alive: fc.boolean(), draining: fc.boolean(), zone: fc.constantFrom('x', 'y', 'z')})),
  )

  test('agrees with isSettled of the standing, with the copies landing as planRepairs counts them (alive, not draining)', () => {
    fc.assert(
      fc.property(cluster, fc.subarray(ids), fc.subarray(ids), fc.integer({min: 1, max: 4}), fc.integer({min: 1, max: 3}), (states, holders, landing, replicas, zones) => {
        const keepers = new Map(ids.map((id, index) => [id, keeper(id, states[index])]))
        const goal = {replicas, zones: Math.min(zones, replicas)}
        const counting = new Set(landing.filter((id) => keepers.get(id)!.alive && !keepers.get(id)!.draining))
        assert.equal(holdersSettled(holders, new Set(landing), keepers, goal), isSettled(standingOf(holders, keepers), counting, keepers, goal))
      }),
      {numRuns: 2000},
    )
  })

  test('tallyOf counts what standingOf lists', () => {
    fc.assert(
      fc.property(cluster, fc.subarray(ids), (states, holders) => {
        const keepers = new Map(ids.map((id, index) => [id, keeper(id, states[index])]))
        const standing = standingOf(holders, keepers)
        assert.deepEqual(tallyOf(holders, keepers), {sources: standing.sources.length, counted: standing.counted.length, zones: standing.zones.size})
      }),
      {numRuns: 1000},
    )
  })

  test('a copy landing on a dead or draining keeper does not settle a file', () => {
    const keepers = new Map([keeper('a'), keeper('b'), keeper('c', {alive: false}), keeper('d', {draining: true}), keeper('e')].map((one) => [one.id, one]))
    const goal = {replicas: 3, zones: 1}
    assert.equal(holdersSettled(['a', 'b'], new Set(['c']), keepers, goal), false)
    assert.equal(holdersSettled(['a', 'b'], new Set(['d']), keepers, goal), false)
    assert.equal(holdersSettled(['a', 'b'], new Set(['e']), keepers, goal), true)
  })
})

describe('draining keepers: sources, never destinations, not counted', () => {
  const base = {inFlight: new Map<string, Set<string>>(), maxPerDestination: 4}

  test('no upload goes to a draining keeper, however idle', () => {
    assert.equal(pickUploadTarget([keeper('a', {draining: true}), keeper('b', {load: 9})], 10)?.id, 'b')
    assert.equal(pickUploadTarget([keeper('a', {draining: true})], 10), undefined)
  })

  test("a draining keeper's replica does not count: the file is copied from it to a keeper that takes copies", () => {
    const keepers = [keeper('a', {draining: true}), keeper('b'), keeper('c'), keeper('d')]
    const tasks = planRepairs({...base, files: [file('f', ['a', 'b', 'c'])], keepers, target: 3})
    assert.deepEqual(tasks.map((task) => task.destination), ['d'])
    const only = planRepairs({...base, files: [file('g', ['a'])], keepers, target: 3})
    assert.deepEqual(only.map((task) => task.source), ['a', 'a', 'a'])
    assert.deepEqual(only.map((task) => task.destination).sort(), ['b', 'c', 'd'])
  })

  test('trims ignore draining holders: their copies go with the drain, not as surplus', () => {
    const keepers = [keeper('a', {draining: true}), keeper('b'), keeper('c'), keeper('d')]
    assert.deepEqual(planTrims([file('f', ['a', 'b', 'c', 'd'])], keepers, 3, new Map()), [])
  })
})
