// Polls a booted consumer app over HTTP until every pattern has shown it works: the @Interval ticked, a supervised
// task was restarted after its first failure and finished, FanOut.map kept input order, an @Cached route went MISS
// then HIT with the same body. Usage: node smoke.mjs http://127.0.0.1:PORT [pid of the app, to stop at once if it exits]
const [base, pid] = process.argv.slice(2);
if (!base) throw new Error('usage: node smoke.mjs <base url> [pid]');

function appAlive() {
  if (!pid) return true;
  try {
    process.kill(Number(pid), 0);
    return true;
  } catch {
    return false;
  }
}

async function get(path, init) {
  const res = await fetch(base + path, init);
  const text = await res.text();
  return { status: res.status, cache: res.headers.get('x-cache'), body: text ? JSON.parse(text) : undefined };
}

/** Polls until `check` returns a truthy value; generous bounds (a cold boot on a loaded machine takes seconds). */
async function until(what, check, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      const value = await check();
      if (value) return value;
    } catch (error) {
      last = error;
    }
    if (!appAlive()) throw new Error(`the app exited while waiting for ${what}`, { cause: last });
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`, { cause: last });
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

function expectEqual(actual, expected, what) {
  if (JSON.stringify(actual) !== JSON.stringify(expected))
    throw new Error(`${what}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`);
  console.log(`ok  ${what}: ${JSON.stringify(actual)}`);
}

const ticks = await until('two @Interval ticks', async () => {
  const { body } = await get('/status');
  return body.ticks >= 2 && body.ticks;
});
console.log(`ok  @Interval ticked: ${ticks} ticks`);

const started = await get('/tasks/smoke', { method: 'POST' });
expectEqual(started.status, 202, 'POST /tasks/smoke status');
const finished = await until('the supervised task to finish', async () =>
  (await get('/status')).body.finished.find((task) => task.name === 'smoke'),
);
expectEqual(finished, { name: 'smoke', attempt: 2 }, 'supervised task restarted once, then finished');

const squares = await get('/squares?n=5');
expectEqual([squares.status, squares.body], [200, [1, 4, 9, 16, 25]], 'FanOut.map');

const miss = await get('/cached');
const hit = await get('/cached');
expectEqual([miss.status, miss.cache, hit.status, hit.cache], [200, 'MISS', 200, 'HIT'], '@Cached X-Cache');
expectEqual(hit.body, miss.body, '@Cached HIT body is the MISS body');
