// The types of `#undici-client` (package.json "imports"): at run time dist/vendor/undici-client.cjs,
// undici's connection pool and request() bundled by scripts/bundle-undici.mjs.
import type {Agent, Dispatcher} from 'undici'

declare const undiciClient: {
  Agent: typeof Agent
  request: (this: Dispatcher, options: Dispatcher.RequestOptions) => Promise<Dispatcher.ResponseData>
}
export default undiciClient
