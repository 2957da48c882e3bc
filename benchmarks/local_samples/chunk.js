'use strict';

/** Split items into arrays of at most size elements, in order. */
function chunk(items, size) {
  if (size <= 0) {
    throw new RangeError('size must be positive');
  }
  const result = [];
  let current = [];
  for (let i = 0; i < items.length; i++) {
    current.push(items[i]);
    if (current.length === size) {
      result.push(current);
      current = [];
    }
  }
  if (current.length > 0) {
    result.push(current);
  }
  return result;
}

module.exports = { chunk };
