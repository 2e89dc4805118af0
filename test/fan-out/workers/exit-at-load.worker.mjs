// A worker module that ends its thread while it loads.
process.exit(7);
export default function never() {}
