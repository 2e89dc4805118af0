// A worker module as TypeScript compiles one to CommonJS (exports.default and named exports).
'use strict';
Object.defineProperty(exports, '__esModule', { value: true });
exports.triple = triple;
function triple(n) {
  return n * 3;
}
exports.default = function square(n) {
  return n * n;
};
