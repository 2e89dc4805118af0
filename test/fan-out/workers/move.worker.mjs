// Returns large results, moved (piscina's move()) or copied.
import { move } from 'piscina';

export function moved(bytes) {
  const data = new Uint8Array(bytes);
  data[bytes - 1] = 7;
  return move(data);
}

export function copied(bytes) {
  const data = new Uint8Array(bytes);
  data[bytes - 1] = 7;
  return data;
}
