'use strict';

/** Seconds in a duration such as "1h30m" or "45s"; null when the text is not one. */
function parseDuration(text) {
  const units = { h: 3600, m: 60, s: 1 };
  let total = 0;
  let number = '';
  let seen = false;
  for (const char of text.trim()) {
    if (char >= '0' && char <= '9') {
      number = number + char;
    } else if (units[char] !== undefined && number !== '') {
      total = total + Number(number) * units[char];
      number = '';
      seen = true;
    } else {
      return null;
    }
  }
  if (number !== '' || !seen) {
    return null;
  }
  return total;
}

module.exports = { parseDuration };
