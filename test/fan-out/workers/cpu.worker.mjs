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
