import assert from 'node:assert/strict'
import {test} from 'node:test'

import {lazyCompilers} from '../src/lib/lazy-validators.js'
import {keeperRoutes, masterRoutes, type Route} from '../src/lib/protocol.js'

// Servers compile a route's schemas at its first request (lazy-validators.ts): a schema Ajv cannot
// compile would no longer stop a server at start, but fail that route's requests. So compile them
// all here, with the compiler and options a server uses (fastify's defaults: no custom Ajv options).
const ROUTES: [string, Route][] = [...Object.entries(masterRoutes).map(([name, route]) => [`master ${name}`, route] as [string, Route]), ...Object.entries(keeperRoutes).map(([name, route]) => [`keeper ${name}`, route] as [string, Route])]
const PARTS = ['params', 'querystring', 'headers', 'body'] as const

test('every request schema of every route compiles with the compiler the servers use', () => {
  const {buildValidator} = lazyCompilers() as unknown as {buildValidator: (schemas: object, options: object) => (route: {schema: unknown; httpPart: string}) => (data: unknown) => boolean}
  const compile = buildValidator({}, {customOptions: {}, plugins: []})
  let compiled = 0
  for (const [name, route] of ROUTES) {
    for (const part of PARTS) {
      if (!route[part]) continue
      const validate = compile({schema: route[part], httpPart: part})
      // The first call compiles; an empty object is valid for no route part that requires a field, and either answer will do.
      assert.doesNotThrow(() => validate({}), `${name} ${part}`)
      compiled++
    }
  }

  assert.ok(compiled > 20, `only ${compiled} schemas were compiled`)
})

test('every header schema names its headers in lower case, as node delivers them', () => {
  // fastify lower-cases header schemas itself only for its default compiler, not for ours.
  for (const [name, route] of ROUTES) {
    const headers = route.headers as {properties?: Record<string, unknown>; required?: string[]} | undefined
    if (!headers) continue
    for (const header of [...Object.keys(headers.properties ?? {}), ...(headers.required ?? [])]) {
      assert.equal(header, header.toLowerCase(), `${name}: header ${header}`)
    }
  }
})
