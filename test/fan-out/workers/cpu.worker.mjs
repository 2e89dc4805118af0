// Worker module for the worker-thread fan-out specs: plain JavaScript, as a compiled worker module is.
import { threadId } from 'node:worker_threads';

/** Keeps the CPU busy for `ms` milliseconds, then returns what it was asked. */
function spinFor(ms) {
  const end = Date.now() + ms;
  let x = 0;
  while (Date.now() < end) x++;
  return x;
}

export default function double(n) {
  return n * 2;
}

export function where(input, ctx) {
  return { input, index: ctx.index, threadId };
}

export function spin(ms, ctx) {
  spinFor(ms);
  return { ms, index: ctx.index, threadId, end: Date.now() };
}

/** Never returns: only ending the thread stops it. */
export function spinForever() {
  for (;;) spinFor(1000);
}

export class ValidationError extends Error {}

export function failOn(n) {
  if (n === 3) throw new ValidationError(`item ${n} is not valid`);
  spinFor(20);
  return n;
}

export function rangeFail() {
  throw new RangeError('out of range in the worker');
}

export function byteLength(input) {
  return input.byteLength;
}

export function sumBuffers(input) {
  return input.a.byteLength + input.b.length;
}

export function returnsFunction() {
  return () => 1;
}

export const notAFunction = 42;

/** 'fail': throws after 100 ms of work; anything else spins for good. */
export function failOrSpin(input) {
  if (input !== 'fail') spinForever();
  spinFor(100);
  throw new ValidationError('asked to fail');
}

export function throwsString() {
  throw 'plain string';
}

// ---- hardening (issue 23) --------------------------------------------------------------------------------------------
import { pbkdf2Sync } from 'node:crypto';

let perRound;
/** Stays in ONE native call (pbkdf2Sync) for about `ms`: terminate() cannot interrupt it. */
export function native(ms) {
  if (perRound === undefined) {
    const start = performance.now();
    pbkdf2Sync('x', 'y', 20_000, 32, 'sha512');
    perRound = Math.max(1e-4, (performance.now() - start) / 20_000);
  }
  pbkdf2Sync('x', 'y', Math.max(1, Math.round(ms / perRound)), 32, 'sha512');
  return { ms, threadId };
}

export function exitNow() {
  process.exit(3);
}

export function grow() {
  const hoard = [];
  for (;;) hoard.push(Array.from({ length: 1e5 }, () => ({ n: hoard.length })));
}

export class HttpError extends Error {
  constructor(message, status, options) {
    super(message, options);
    this.status = status;
  }
}

export function richError() {
  const root = new TypeError('socket hang up');
  root.code = 'ECONNRESET';
  const error = new HttpError('upstream failed', 502, { cause: root });
  error.code = 'E_UPSTREAM';
  error.details = { retryable: true, tries: [1, 2] };
  error.when = new Date(0);
  error.notCloneable = () => 1;
  return Promise.reject(error);
}

export function aggregate() {
  const first = new RangeError('first');
  first.code = 'E1';
  throw new AggregateError([first, new HttpError('second', 404), 'third'], 'all failed');
}

export function causeCycle() {
  const error = new Error('outer');
  error.cause = error;
  throw error;
}
