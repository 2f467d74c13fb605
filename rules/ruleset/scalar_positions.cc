#include "rules/ruleset/scalar_positions.h"

#include <algorithm>
#include <string>

namespace tappa::ruleset {
namespace {

bool IsWhite(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

void AppendUtf8(uint32_t cp, std::string* out) {
  if (cp < 0x80) {
    *out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    *out += static_cast<char>(0xC0 | (cp >> 6));
    *out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    *out += static_cast<char>(0xE0 | (cp >> 12));
    *out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    *out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    *out += static_cast<char>(0xF0 | (cp >> 18));
    *out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    *out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    *out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

// Decodes the double-quoted escape starting at text[i] == '\\'. Sets
// `*length` to the bytes consumed and returns the decoded bytes; returns
// false for an unknown or truncated escape. A line continuation ("\\\n")
// decodes to nothing.
bool DecodeEscape(absl::string_view text, size_t i, std::string* decoded,
                  size_t* length) {
  decoded->clear();
  if (i + 1 >= text.size()) return false;
  char c = text[i + 1];
  *length = 2;
  switch (c) {
    case '0':
      *decoded = std::string(1, '\0');
      return true;
    case 'a':
      *decoded = "\a";
      return true;
    case 'b':
      *decoded = "\b";
      return true;
    case 't':
    case '\t':
      *decoded = "\t";
      return true;
    case 'n':
      *decoded = "\n";
      return true;
    case 'v':
      *decoded = "\v";
      return true;
    case 'f':
      *decoded = "\f";
      return true;
    case 'r':
      *decoded = "\r";
      return true;
    case 'e':
      *decoded = "\x1b";
      return true;
    case ' ':
      *decoded = " ";
      return true;
    case '"':
      *decoded = "\"";
      return true;
    case '/':
      *decoded = "/";
      return true;
    case '\\':
      *decoded = "\\";
      return true;
    case 'N':
      AppendUtf8(0x85, decoded);
      return true;
    case '_':
      AppendUtf8(0xA0, decoded);
      return true;
    case 'L':
      AppendUtf8(0x2028, decoded);
      return true;
    case 'P':
      AppendUtf8(0x2029, decoded);
      return true;
    case '\n':
      return true;  // continuation; following indentation skipped
    case '\r':
      return true;
    case 'x':
    case 'u':
    case 'U': {
      int digits = c == 'x' ? 2 : c == 'u' ? 4 : 8;
      if (i + 2 + digits > text.size()) return false;
      uint32_t cp = 0;
      for (int d = 0; d < digits; ++d) {
        int h = HexValue(text[i + 2 + d]);
        if (h < 0) return false;
        cp = cp * 16 + static_cast<uint32_t>(h);
      }
      if (cp > 0x10FFFF) return false;
      AppendUtf8(cp, decoded);
      *length = 2 + digits;
      return true;
    }
    default:
      return false;
  }
}

}  // namespace

std::vector<size_t> AlignScalar(absl::string_view text, size_t start,
                                absl::string_view value) {
  enum class Style { kPlain, kSingle, kDouble, kBlock };
  size_t i = start;
  if (i >= text.size()) return {};
  // Node properties (tags, anchors) precede the scalar itself.
  while (i < text.size() && (text[i] == '!' || text[i] == '&')) {
    while (i < text.size() && !IsWhite(text[i])) ++i;
    while (i < text.size() && (text[i] == ' ' || text[i] == '\t')) ++i;
  }
  if (i >= text.size()) return {};
  Style style = Style::kPlain;
  if (text[i] == '\'') {
    style = Style::kSingle;
    ++i;
  } else if (text[i] == '"') {
    style = Style::kDouble;
    ++i;
  } else if (text[i] == '|' || text[i] == '>') {
    style = Style::kBlock;
    size_t eol = text.find('\n', i);
    if (eol == absl::string_view::npos) return {};
    i = eol + 1;
  }
  std::vector<size_t> map(value.size());
  size_t k = 0;
  std::string decoded;
  while (k < value.size()) {
    if (i >= text.size()) return {};
    char t = text[i];
    if (style == Style::kSingle && t == '\'') {
      if (i + 1 < text.size() && text[i + 1] == '\'' && value[k] == '\'') {
        map[k++] = i;
        i += 2;
        continue;
      }
      return {};  // the closing quote came before the value's end
    }
    if (style == Style::kDouble && t == '"') return {};
    if (style == Style::kDouble && t == '\\') {
      size_t length = 0;
      if (!DecodeEscape(text, i, &decoded, &length)) return {};
      if (decoded.empty()) {  // line continuation
        i += length;
        while (i < text.size() && (text[i] == ' ' || text[i] == '\t')) ++i;
        continue;
      }
      if (value.substr(k, decoded.size()) != decoded) return {};
      for (size_t j = 0; j < decoded.size(); ++j) map[k + j] = i;
      k += decoded.size();
      i += length;
      continue;
    }
    if (!IsWhite(t) && t == value[k]) {
      map[k++] = i++;
      continue;
    }
    if (IsWhite(t) || IsWhite(value[k])) {
      // Line folding, indentation and chomping change whitespace runs but
      // nothing else: align a whitespace run of the value with the text's,
      // right-aligned so that indentation inside the value keeps its column.
      size_t i2 = i;
      while (i2 < text.size() && IsWhite(text[i2])) ++i2;
      size_t k2 = k;
      while (k2 < value.size() && IsWhite(value[k2])) ++k2;
      if (i2 == i) return {};
      size_t lt = i2 - i;
      size_t lv = k2 - k;
      for (size_t j = 0; j < lv; ++j) {
        map[k + j] = lv <= lt ? i2 - lv + j : i + std::min(j, lt - 1);
      }
      k = k2;
      i = i2;
      continue;
    }
    return {};
  }
  return map;
}

size_t OffsetOfPosition(absl::string_view source, int line, int column) {
  size_t i = 0;
  for (int l = 1; l < line && i < source.size(); ++i) {
    if (source[i] == '\n') ++l;
  }
  // Walk column - 1 code points, stopping at the end of the line.
  for (int c = 1; c < column && i < source.size() && source[i] != '\n'; ++c) {
    ++i;
    while (i < source.size() &&
           (static_cast<unsigned char>(source[i]) & 0xC0) == 0x80) {
      ++i;
    }
  }
  return i;
}

}  // namespace tappa::ruleset
