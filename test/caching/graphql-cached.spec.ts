import { CacheInterceptor } from '@nestjs/cache-manager';
import { APP_INTERCEPTOR } from '@nestjs/core';
import { CacheService, ResponseCacheInterceptor } from 'nestjs-concurrency';
import { Gate } from '../fixtures/cache-app.js';
import {
  CachedMutationResolver,
  ClassCachedResolver,
  type GqlApp,
  gqlCalls,
  gqlGate,
  startGqlApp,
} from '../fixtures/graphql-cache-app.js';

const GLOBAL = [{ provide: APP_INTERCEPTOR, useClass: ResponseCacheInterceptor }];

describe('@Cached on GraphQL @Query resolvers (code first, Apollo on Express)', () => {
  let gql: GqlApp | undefined;

  beforeEach(() => {
    for (const key of Object.keys(gqlCalls.calls)) delete gqlCalls.calls[key];
    gqlGate.current = new Gate();
    gqlGate.current.open();
  });

  afterEach(async () => {
    await gql?.app.close();
    gql = undefined;
  });

  it('runs the resolver once for the same query twice, and again for other arguments', async () => {
    gql = await startGqlApp();
    const first = await gql.query('{ item(id: 1) { id name run } }');
    const second = await gql.query('{ item(id: 1) { name run } }');
    expect(first).toEqual({ data: { item: { id: 1, name: 'item 1', run: 1 } } });
    expect(second).toEqual({ data: { item: { name: 'item 1', run: 1 } } });
    expect(gqlCalls.count('item')).toBe(1);
    expect(await gql.query('{ item(id: 1, q: "x") { name run } }')).toEqual({
      data: { item: { name: 'item 1 x', run: 2 } },
    });
    expect(await gql.query('{ item(id: 2) { run } }')).toEqual({ data: { item: { run: 3 } } });
    expect(gqlCalls.count('item')).toBe(3);
    const stats = gql.app.get(CacheService).stats();
    expect(stats).toMatchObject({ misses: 3, hits: 1 });
    expect(stats.methods['ItemsResolver.item']).toMatchObject({ misses: 3, hits: 1 });
  });

  it('keys on the arguments, not on how the query spells them (variables, aliases)', async () => {
    gql = await startGqlApp();
    await gql.query('{ item(id: 1) { run } }');
    await gql.query('{ a: item(id: 1) { run } b: item(id: 1) { name } }');
    const response = await fetch(gql.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ query: 'query Q($id: Int!) { item(id: $id) { run } }', variables: { id: 1 } }),
    });
    expect(await response.json()).toEqual({ data: { item: { run: 1 } } });
    expect(gqlCalls.count('item')).toBe(1);
  });

  it('runs the resolver once for 30 concurrent equal queries (single flight)', async () => {
    gqlGate.current = new Gate();
    gql = await startGqlApp();
    const app = gql;
    const all = Promise.all(Array.from({ length: 30 }, () => app.query('{ item(id: 9) { run } }')));
    await vi.waitFor(() => expect(gqlGate.current.waiting).toBe(1), { timeout: 10_000, interval: 10 });
    gqlGate.current.open();
    expect(new Set((await all).map((r) => JSON.stringify(r)))).toEqual(new Set(['{"data":{"item":{"run":1}}}']));
    expect(gqlCalls.count('item')).toBe(1);
  });

  it("caches per user with vary: ['user'] (req.user from the GraphQL context's request)", async () => {
    gql = await startGqlApp();
    const ann = await gql.query('{ mine(id: 1) { run } }', { 'x-user': 'ann' });
    const annAgain = await gql.query('{ mine(id: 1) { run } }', { 'x-user': 'ann' });
    const bob = await gql.query('{ mine(id: 1) { run } }', { 'x-user': 'bob' });
    expect(ann).toEqual({ data: { mine: { run: 1 } } });
    expect(annAgain).toEqual(ann);
    expect(bob).toEqual({ data: { mine: { run: 2 } } });
    expect(gqlCalls.count('mine')).toBe(2);
  });

  it('does not share a credentialed query without vary (the shared-cache rule of routes)', async () => {
    gql = await startGqlApp();
    await gql.query('{ item(id: 1) { run } }', { authorization: 'Bearer a' });
    await gql.query('{ item(id: 1) { run } }', { authorization: 'Bearer b' });
    expect(gqlCalls.count('item')).toBe(2);
  });

  it('evicts by tag after a @CacheEvict mutation', async () => {
    gql = await startGqlApp();
    await gql.query('{ item(id: 1) { run } }');
    expect(await gql.query('mutation { touch }')).toEqual({ data: { touch: true } });
    expect(await gql.query('{ item(id: 1) { run } }')).toEqual({ data: { item: { run: 2 } } });
  });

  it('as a global interceptor, leaves resolvers without @Cached alone and caches the others once', async () => {
    gql = await startGqlApp({}, undefined, GLOBAL);
    expect(await gql.query('{ uncached(id: 1) { run } }')).toEqual({ data: { uncached: { run: 1 } } });
    expect(await gql.query('{ uncached(id: 1) { run } }')).toEqual({ data: { uncached: { run: 2 } } });
    await gql.query('{ item(id: 1) { run } }');
    await gql.query('{ item(id: 1) { run } }');
    expect(gqlCalls.count('item')).toBe(1);
    expect(gql.app.get(CacheService).stats()).toMatchObject({ misses: 1, hits: 1 });
  });

  it("where @nestjs/cache-manager's global CacheInterceptor breaks GraphQL", async () => {
    // The stock interceptor reads an HTTP request that a GraphQL resolver does not have: every query fails.
    gql = await startGqlApp({}, undefined, [{ provide: APP_INTERCEPTOR, useClass: CacheInterceptor }]);
    const stock = await gql.query('{ uncached(id: 1) { run } }');
    expect(stock.errors?.length ?? 0).toBeGreaterThan(0);
  });

  it('with @Cached on the class, caches its queries and runs its mutations and field resolvers every time', async () => {
    gql = await startGqlApp({}, [ClassCachedResolver], [], { fieldResolverEnhancers: ['interceptors'] });
    expect(await gql.query('{ listed(id: 1) { run owner } }')).toEqual({
      data: { listed: { run: 1, owner: 'owner of 1 #1' } },
    });
    expect(await gql.query('{ listed(id: 1) { run owner } }')).toEqual({
      data: { listed: { run: 1, owner: 'owner of 1 #2' } },
    });
    expect(await gql.query('mutation { bump }')).toEqual({ data: { bump: 1 } });
    expect(await gql.query('mutation { bump }')).toEqual({ data: { bump: 2 } });
  });

  it('refuses @Cached on a @Mutation at boot, naming it', async () => {
    await expect(startGqlApp({}, [CachedMutationResolver])).rejects.toThrow(
      /@Cached on CachedMutationResolver\.create, a GraphQL @Mutation/,
    );
  });
});
