// Recursive-descent parser for CEL.
//
// Stack safety: the only recursion is through ParseExpr (parentheses,
// arguments, list and map elements, indexes, the else branch of ?:), guarded
// by a depth counter. Operator chains (`a + b + ...`, `a.b.c...`, `!!!x`) are
// parsed with loops. Independently, every node's height is tracked as
// children are attached, and a tree taller than kMaxNestingDepth is an error:
// so every tree this parser returns is at most kMaxNestingDepth deep (one
// it destroys after an error at most one level more), and the recursive
// Expr destructor and the recursive walks of the checker and evaluator are
// safe.
//
// Errors: lexical errors and "semantic" syntax errors (reserved identifiers,
// literal ranges, macro misuse, unsupported constructs) are collected and
// parsing continues. The first true syntax error (an unexpected token) stops
// the parse: the parser then sees only the end of input, so every pending
// function unwinds at once without reporting follow-on errors.
#include "rules/cel/parser.h"

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <deque>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "rules/cel/ast.h"
#include "rules/cel/lexer.h"
#include "rules/cel/source.h"
#include "rules/cel/value.h"

namespace tappa::cel {
namespace {

using ExprPtr = std::unique_ptr<Expr>;

// At most this many issues are returned: beyond the first few, messages are
// noise, and converting each offset to a position costs a scan.
constexpr size_t kMaxIssues = 20;

struct PendingIssue {
  int32_t offset;
  std::string message;
};

class Parser {
 public:
  Parser(absl::string_view source, const ParseOptions& options)
      : source_(source), options_(options), lexer_(source, &lex_errors_) {
    heights_.push_back(0);  // ids start at 1
  }

  ParseResult Run();

 private:
  // ---- Tokens -------------------------------------------------------------
  const Token& Peek(size_t k = 0) {
    if (fatal_) return end_;
    if (ahead_.size() <= k) Fill(k);
    return ahead_[k];
  }
  // Lexes up to lookahead `k`. Not inlined: keeps the lexer's temporaries
  // out of the recursive functions' frames.
  [[gnu::noinline]] void Fill(size_t k) {
    while (ahead_.size() <= k) ahead_.push_back(lexer_.Next());
  }
  // Consumes the current token; returns its offset.
  int32_t Advance() {
    if (fatal_) return end_.offset;
    const int32_t offset = Peek().offset;
    ahead_.pop_front();
    return offset;
  }
  // Consumes the current token and returns its text.
  std::string TakeText() {
    if (fatal_) return "";
    std::string text = std::move(ahead_.front().text);
    ahead_.pop_front();
    return text;
  }
  bool Accept(TokenKind kind) {
    if (Peek().kind != kind) return false;
    Advance();
    return true;
  }
  // Consumes a token of `kind` or reports "expected <what>, found ...".
  [[gnu::noinline]] bool Expect(TokenKind kind, absl::string_view what) {
    if (Accept(kind)) return true;
    Unexpected(absl::StrCat("expected ", what));
    return false;
  }

  // ---- Errors -------------------------------------------------------------
  // A syntax error at the current token; stops the parse. An kError token
  // was already reported by the lexer, so it stops the parse silently.
  [[gnu::noinline]] void Unexpected(absl::string_view expected = "") {
    if (fatal_) return;
    const Token& t = Peek();
    if (t.kind == TokenKind::kError) {
      fatal_ = true;
    } else if (!expected.empty()) {
      Fatal(t.offset,
            absl::StrCat(expected, ", found ", DescribeToken(source_, t)));
    } else if (t.kind == TokenKind::kEnd) {
      Fatal(t.offset, "unexpected end of expression");
    } else {
      Fatal(t.offset,
            absl::StrCat("unexpected token ", DescribeToken(source_, t)));
    }
  }
  // The error that stops the parse; kept apart so that it is always among
  // the issues returned, however many others precede it.
  [[gnu::noinline]] void Fatal(int32_t offset, std::string message) {
    if (fatal_) return;
    fatal_issue_ = PendingIssue{offset, std::move(message)};
    fatal_ = true;
  }
  [[gnu::noinline]] void NestingError(int32_t offset) {
    Fatal(offset, absl::StrCat("expression nesting exceeds the limit of ",
                               kMaxNestingDepth));
  }
  // A non-fatal error: parsing continues. After a fatal error the tree is
  // made of placeholders: whatever is wrong with it then is a consequence,
  // not news.
  [[gnu::noinline]] void Report(int32_t offset, std::string message) {
    if (fatal_) return;
    if (issues_.size() < kMaxIssues) {
      issues_.push_back({offset, std::move(message)});
    }
  }

  // ---- Nodes --------------------------------------------------------------
  ExprPtr NewExpr(ExprKind kind, int32_t offset) {
    auto e = std::make_unique<Expr>();
    e->kind = kind;
    e->id = next_id_++;
    e->offset = offset;
    heights_.push_back(1);
    return e;
  }
  // Attaches `child` to `parent`, keeping track of the parent's height; a
  // tree taller than the limit is reported at `where`.
  void AddChild(Expr* parent, ExprPtr child, int32_t where) {
    const int h = heights_[child->id] + 1;
    if (h > heights_[parent->id]) {
      heights_[parent->id] = h;
      if (h > kMaxNestingDepth) NestingError(where);
    }
    parent->children.push_back(std::move(child));
  }
  ExprPtr Placeholder(int32_t offset) {
    return NewExpr(ExprKind::kConstant, offset);
  }
  ExprPtr NewConst(Value v, int32_t offset) {
    ExprPtr e = NewExpr(ExprKind::kConstant, offset);
    e->constant = std::move(v);
    return e;
  }
  ExprPtr NewIdent(std::string name, int32_t offset) {
    ExprPtr e = NewExpr(ExprKind::kIdent, offset);
    e->name = std::move(name);
    return e;
  }
  // Not inlined: keeps its temporaries out of the recursive functions'
  // frames.
  [[gnu::noinline]] ExprPtr NewCall(const char* name, int32_t offset,
                                    int32_t where, ExprPtr a,
                                    ExprPtr b = nullptr, ExprPtr c = nullptr) {
    ExprPtr e = NewExpr(ExprKind::kCall, offset);
    e->name = name;
    AddChild(e.get(), std::move(a), where);
    if (b) AddChild(e.get(), std::move(b), where);
    if (c) AddChild(e.get(), std::move(c), where);
    return e;
  }

  // ---- Grammar ------------------------------------------------------------
  struct BinaryOp {
    TokenKind kind;
    int32_t offset;
  };
  struct UnaryOp {
    bool is_not;
    int32_t offset;
  };
  // Operands and binary operators of one ConditionalOr, in source order:
  // ops[i] joins operands[i] and operands[i + 1]; starts[i] is the offset of
  // the first character of operands[i].
  struct OperatorChain {
    std::vector<ExprPtr> operands;
    std::vector<int32_t> starts;
    std::vector<BinaryOp> ops;
  };

  ExprPtr ParseExpr();
  [[gnu::noinline]] ExprPtr ParseConditional(ExprPtr cond, int32_t start);
  ExprPtr ParseOperators();
  [[gnu::noinline]] ExprPtr BuildOperators(OperatorChain& chain, size_t lo,
                                           size_t hi, int level);
  ExprPtr Balance(const char* function, std::vector<ExprPtr>& terms,
                  const std::vector<int32_t>& starts,
                  const std::vector<int32_t>& op_offsets, size_t lo, size_t hi);
  ExprPtr ParseUnary();
  [[gnu::noinline]] ExprPtr NegatedLiteral();
  ExprPtr ParseMember();
  [[gnu::noinline]] void BadSelection(int32_t dot);
  [[gnu::noinline]] ExprPtr SkipMessageConstruction(int32_t start);
  ExprPtr ParsePrimary();
  ExprPtr ParseIdentOrCall();
  [[gnu::noinline]] ExprPtr ParseLiteral();
  void ParseExprList(Expr* parent, TokenKind close);
  ExprPtr ParseMap();

  // ---- Macros -------------------------------------------------------------
  [[gnu::noinline]] ExprPtr ExpandHas(ExprPtr call);
  [[gnu::noinline]] ExprPtr ExpandReceiverMacro(ExprPtr call);
  [[gnu::noinline]] ExprPtr ExpandComprehension(ExprPtr call, MacroKind kind);

  absl::string_view source_;
  ParseOptions options_;
  std::vector<LexError> lex_errors_;
  Lexer lexer_;
  std::deque<Token> ahead_;
  const Token end_{};
  bool fatal_ = false;
  int depth_ = 0;
  int64_t next_id_ = 1;
  std::vector<int> heights_;        // by node id
  std::vector<UnaryOp> unary_ops_;  // prefix operators being parsed
  std::vector<PendingIssue> issues_;
  std::optional<PendingIssue> fatal_issue_;
};

ParseResult Parser::Run() {
  ParseResult result;
  if (source_.size() > kMaxSourceBytes) {
    result.issues.push_back(
        {SourcePosition{1, 1},
         absl::StrCat("expression is too long: ", source_.size(),
                      " bytes exceeds the limit of ", kMaxSourceBytes,
                      " bytes")});
    return result;
  }
  if (const int64_t bad = FindInvalidUtf8(source_); bad >= 0) {
    result.issues.push_back({PositionOf(source_, static_cast<int32_t>(bad)),
                             "invalid UTF-8 in source"});
    return result;
  }

  ExprPtr expr = ParseExpr();
  if (!fatal_ && Peek().kind != TokenKind::kEnd) Unexpected();

  std::vector<PendingIssue> all;
  all.reserve(lex_errors_.size() + issues_.size());
  for (LexError& e : lex_errors_)
    all.push_back({e.offset, std::move(e.message)});
  for (PendingIssue& e : issues_) all.push_back(std::move(e));
  auto by_offset = [](const PendingIssue& a, const PendingIssue& b) {
    return a.offset < b.offset;
  };
  std::stable_sort(all.begin(), all.end(), by_offset);
  if (fatal_issue_.has_value()) {
    if (all.size() >= kMaxIssues) all.resize(kMaxIssues - 1);
    all.insert(
        std::upper_bound(all.begin(), all.end(), *fatal_issue_, by_offset),
        std::move(*fatal_issue_));
  }
  for (size_t i = 0; i < all.size() && result.issues.size() < kMaxIssues; ++i) {
    if (i > 0 && all[i].offset == all[i - 1].offset &&
        all[i].message == all[i - 1].message) {
      continue;
    }
    result.issues.push_back(
        {PositionOf(source_, all[i].offset), std::move(all[i].message)});
  }
  if (result.issues.empty()) result.expr = std::move(expr);
  return result;
}

// Expr = ConditionalOr ["?" ConditionalOr ":" Expr]
//
// The functions on the recursion path (ParseExpr, ParseOperators,
// ParseMember, ParsePrimary, ParseExprList, ParseMap) keep their frames
// small: cold work (literals, macros, errors) lives in separate functions
// that return before the recursion continues. About 0.8 KiB of stack per
// nesting level at -O2, so the deepest accepted input needs ~200 KiB
// (tests/rules/cel/parser_test.cc checks it in a 1 MiB thread stack).
ExprPtr Parser::ParseExpr() {
  const int32_t start = Peek().offset;
  if (depth_ >= kMaxNestingDepth) {
    NestingError(start);
    return Placeholder(start);
  }
  ++depth_;
  ExprPtr e = ParseOperators();
  if (Peek().kind == TokenKind::kQuestion)
    e = ParseConditional(std::move(e), start);
  --depth_;
  return e;
}

// The rest of `cond ? then : else` after `cond`.
ExprPtr Parser::ParseConditional(ExprPtr cond, int32_t start) {
  const int32_t where = Advance();
  ExprPtr then = ParseOperators();
  Expect(TokenKind::kColon, "':'");
  ExprPtr otherwise = ParseExpr();
  return NewCall("_?_:_", start, where, std::move(cond), std::move(then),
                 std::move(otherwise));
}

namespace {

// Binding strength of the binary operators (higher binds tighter), or 0 for
// other tokens.
constexpr int kOrPrecedence = 1;
constexpr int kAndPrecedence = 2;

int BinaryPrecedence(TokenKind kind) {
  switch (kind) {
    case TokenKind::kOrOr:
      return kOrPrecedence;
    case TokenKind::kAndAnd:
      return kAndPrecedence;
    case TokenKind::kLess:
    case TokenKind::kLessEqual:
    case TokenKind::kGreater:
    case TokenKind::kGreaterEqual:
    case TokenKind::kEqual:
    case TokenKind::kNotEqual:
    case TokenKind::kIn:
      return 3;
    case TokenKind::kPlus:
    case TokenKind::kMinus:
      return 4;
    case TokenKind::kStar:
    case TokenKind::kSlash:
    case TokenKind::kPercent:
      return 5;
    default:
      return 0;
  }
}

const char* BinaryFunction(TokenKind kind) {
  switch (kind) {
    case TokenKind::kOrOr:
      return "_||_";
    case TokenKind::kAndAnd:
      return "_&&_";
    case TokenKind::kLess:
      return "_<_";
    case TokenKind::kLessEqual:
      return "_<=_";
    case TokenKind::kGreater:
      return "_>_";
    case TokenKind::kGreaterEqual:
      return "_>=_";
    case TokenKind::kEqual:
      return "_==_";
    case TokenKind::kNotEqual:
      return "_!=_";
    case TokenKind::kIn:
      return "@in";
    case TokenKind::kPlus:
      return "_+_";
    case TokenKind::kMinus:
      return "_-_";
    case TokenKind::kStar:
      return "_*_";
    case TokenKind::kSlash:
      return "_/_";
    default:
      return "_%_";
  }
}

}  // namespace

// ConditionalOr down to Unary: a flat loop collects operands (each a Member
// with its prefix operators) and binary operators; BuildOperators then makes
// the tree. So a chain of any length costs one stack frame.
ExprPtr Parser::ParseOperators() {
  OperatorChain chain;
  while (true) {
    chain.starts.push_back(Peek().offset);
    chain.operands.push_back(ParseUnary());
    const TokenKind kind = Peek().kind;
    if (BinaryPrecedence(kind) == 0 || fatal_) break;
    chain.ops.push_back({kind, Advance()});
  }
  if (chain.ops.empty()) return std::move(chain.operands[0]);
  return BuildOperators(chain, 0, chain.operands.size(), kOrPrecedence);
}

// Builds operands [lo, hi) joined by ops [lo, hi - 1). || and && chains are
// built as balanced trees (as cel-go does): they are associative and
// commutative in CEL, and a balanced tree keeps a 10,000-term chain 14 levels
// deep. The other operators are left-associative: operator-precedence
// parsing with an explicit stack.
ExprPtr Parser::BuildOperators(OperatorChain& chain, size_t lo, size_t hi,
                               int level) {
  if (hi - lo == 1) return std::move(chain.operands[lo]);
  if (level <= kAndPrecedence) {
    const TokenKind kind =
        level == kOrPrecedence ? TokenKind::kOrOr : TokenKind::kAndAnd;
    // Split at this level's operators; each part binds tighter.
    std::vector<ExprPtr> terms;
    std::vector<int32_t> starts, op_offsets;
    size_t part = lo;
    for (size_t i = lo; i + 1 < hi; ++i) {
      if (chain.ops[i].kind != kind) continue;
      starts.push_back(chain.starts[part]);
      terms.push_back(BuildOperators(chain, part, i + 1, level + 1));
      op_offsets.push_back(chain.ops[i].offset);
      part = i + 1;
    }
    starts.push_back(chain.starts[part]);
    terms.push_back(BuildOperators(chain, part, hi, level + 1));
    return Balance(BinaryFunction(kind), terms, starts, op_offsets, 0,
                   terms.size());
  }
  // Relations, additive and multiplicative operators, left-associative.
  std::vector<size_t> operands;  // indexes into chain.operands
  std::vector<size_t> pending;   // indexes into chain.ops
  auto reduce = [&] {
    const BinaryOp& op = chain.ops[pending.back()];
    pending.pop_back();
    const size_t rhs = operands.back();
    operands.pop_back();
    const size_t lhs = operands.back();
    chain.operands[lhs] =
        NewCall(BinaryFunction(op.kind), chain.starts[lhs], op.offset,
                std::move(chain.operands[lhs]), std::move(chain.operands[rhs]));
  };
  operands.push_back(lo);
  for (size_t i = lo; i + 1 < hi; ++i) {
    const int precedence = BinaryPrecedence(chain.ops[i].kind);
    while (!pending.empty() &&
           BinaryPrecedence(chain.ops[pending.back()].kind) >= precedence) {
      reduce();
    }
    pending.push_back(i);
    operands.push_back(i + 1);
  }
  while (!pending.empty()) reduce();
  return std::move(chain.operands[lo]);
}

ExprPtr Parser::Balance(const char* function, std::vector<ExprPtr>& terms,
                        const std::vector<int32_t>& starts,
                        const std::vector<int32_t>& op_offsets, size_t lo,
                        size_t hi) {
  if (hi - lo == 1) return std::move(terms[lo]);
  const size_t mid = lo + (hi - lo) / 2;
  ExprPtr left = Balance(function, terms, starts, op_offsets, lo, mid);
  ExprPtr right = Balance(function, terms, starts, op_offsets, mid, hi);
  return NewCall(function, starts[lo], op_offsets[mid - 1], std::move(left),
                 std::move(right));
}

// Unary = Member | "!" {"!"} Member | "-" {"-"} Member. The operators are
// counted in a loop (their number is limited like any nesting).
ExprPtr Parser::ParseUnary() {
  const TokenKind first = Peek().kind;
  if (first != TokenKind::kBang && first != TokenKind::kMinus) {
    return ParseMember();
  }
  const size_t begin = unary_ops_.size();
  while (Peek().kind == TokenKind::kBang || Peek().kind == TokenKind::kMinus) {
    const bool is_not = Peek().kind == TokenKind::kBang;
    const int32_t offset = Advance();
    unary_ops_.push_back({is_not, offset});
    if (unary_ops_.size() - begin > static_cast<size_t>(kMaxNestingDepth)) {
      NestingError(offset);
      unary_ops_.resize(begin);
      return Placeholder(offset);
    }
  }
  ExprPtr operand = NegatedLiteral();
  if (operand == nullptr) operand = ParseMember();
  while (unary_ops_.size() > begin) {
    const UnaryOp op = unary_ops_.back();
    unary_ops_.pop_back();
    operand = NewCall(op.is_not ? "!_" : "-_", op.offset, op.offset,
                      std::move(operand));
  }
  return operand;
}

// When the innermost prefix operator is '-' and an int or double literal
// follows on its own, folds them into a negative constant (as cel-go does),
// which is what makes -9223372036854775808 expressible; returns null
// otherwise.
ExprPtr Parser::NegatedLiteral() {
  if (unary_ops_.back().is_not) return nullptr;
  const TokenKind kind = Peek().kind;
  if (kind != TokenKind::kInt && kind != TokenKind::kDouble) return nullptr;
  const TokenKind next = Peek(1).kind;
  if (next == TokenKind::kDot || next == TokenKind::kLBracket ||
      next == TokenKind::kLBrace || next == TokenKind::kLParen) {
    return nullptr;  // `-1.f()` is -(1.f())
  }
  const int32_t offset = unary_ops_.back().offset;
  unary_ops_.pop_back();
  const uint64_t magnitude = Peek().int_value;
  const double d = Peek().double_value;
  const int32_t literal = Advance();
  if (kind == TokenKind::kDouble) return NewConst(Value::Double(-d), offset);
  if (magnitude > uint64_t{1} << 63) {
    Report(literal, "integer literal out of range");
    return Placeholder(offset);
  }
  // 0 - magnitude in unsigned arithmetic, then reinterpreted: exact for every
  // magnitude up to 2^63.
  return NewConst(Value::Int(static_cast<int64_t>(uint64_t{0} - magnitude)),
                  offset);
}

// Member = Primary | Member "." IDENT ["(" [ExprList] ")"] | Member "[" Expr
// "]"
//        | Member "{" [FieldInits] "}"
ExprPtr Parser::ParseMember() {
  const int32_t start = Peek().offset;
  ExprPtr e = ParsePrimary();
  while (true) {
    const TokenKind kind = Peek().kind;
    if (kind == TokenKind::kDot) {
      const int32_t dot = Advance();
      if (Peek().kind != TokenKind::kIdent) {
        BadSelection(dot);
        break;
      }
      std::string name = TakeText();
      if (Peek().kind == TokenKind::kLParen) {
        Advance();
        ExprPtr call = NewExpr(ExprKind::kCall, start);
        call->name = std::move(name);
        call->has_target = true;
        AddChild(call.get(), std::move(e), dot);
        ParseExprList(call.get(), TokenKind::kRParen);
        e = options_.enable_macros ? ExpandReceiverMacro(std::move(call))
                                   : std::move(call);
      } else {
        ExprPtr select = NewExpr(ExprKind::kSelect, start);
        select->name = std::move(name);
        AddChild(select.get(), std::move(e), dot);
        e = std::move(select);
      }
    } else if (kind == TokenKind::kLBracket) {
      const int32_t bracket = Advance();
      if (Peek().kind == TokenKind::kQuestion) {
        Fatal(bracket, "optional index '[?' is not supported");
        break;
      }
      ExprPtr index = ParseExpr();
      Expect(TokenKind::kRBracket, "']'");
      e = NewCall("_[_]", start, bracket, std::move(e), std::move(index));
    } else if (kind == TokenKind::kLBrace &&
               (e->kind == ExprKind::kIdent || e->kind == ExprKind::kSelect)) {
      e = SkipMessageConstruction(start);
    } else {
      break;
    }
  }
  return e;
}

// Reports a '.' not followed by a field or function name.
void Parser::BadSelection(int32_t dot) {
  if (Peek().kind == TokenKind::kQuestion) {
    Fatal(dot, "optional field selection '.?' is not supported");
  } else {
    Unexpected("expected a field or function name after '.'");
  }
}

// `T{f: v, ...}` builds a protocol buffer message, which Tappa has no use
// for: it is parsed (so the rest of the expression is still checked) and
// reported.
ExprPtr Parser::SkipMessageConstruction(int32_t start) {
  Report(start, "message construction 'Type{field: value}' is not supported");
  Advance();  // '{'
  while (Peek().kind != TokenKind::kRBrace && !fatal_) {
    if (Peek().kind == TokenKind::kQuestion) {
      Fatal(Peek().offset, "optional field '?f' is not supported");
      break;
    }
    if (!Expect(TokenKind::kIdent, "a field name")) break;
    if (!Expect(TokenKind::kColon, "':'")) break;
    ParseExpr();
    if (!Accept(TokenKind::kComma)) break;
  }
  Expect(TokenKind::kRBrace, "',' or '}'");
  return Placeholder(start);
}

// Primary = ["."] IDENT ["(" [ExprList] ")"] | "(" Expr ")"
//         | "[" [ExprList] "]" | "{" [MapInits] "}" | LITERAL
ExprPtr Parser::ParsePrimary() {
  const int32_t offset = Peek().offset;
  switch (Peek().kind) {
    case TokenKind::kDot:
    case TokenKind::kIdent:
      return ParseIdentOrCall();
    case TokenKind::kLParen: {
      Advance();
      ExprPtr e = ParseExpr();
      Expect(TokenKind::kRParen, "')'");
      return e;
    }
    case TokenKind::kLBracket: {
      Advance();
      ExprPtr list = NewExpr(ExprKind::kList, offset);
      ParseExprList(list.get(), TokenKind::kRBracket);
      return list;
    }
    case TokenKind::kLBrace:
      return ParseMap();
    default:
      return ParseLiteral();
  }
}

// ["."] IDENT ["(" [ExprList] ")"], including the has() macro.
ExprPtr Parser::ParseIdentOrCall() {
  const int32_t start = Peek().offset;
  std::string name;
  if (Peek().kind == TokenKind::kDot) {
    Advance();
    if (Peek().kind != TokenKind::kIdent) {
      Unexpected("expected an identifier after leading '.'");
      return Placeholder(start);
    }
    name = absl::StrCat(".", TakeText());
  } else {
    name = TakeText();
    if (IsHostReservedWord(name)) {
      Report(start, absl::StrCat("reserved identifier: ", name));
    }
  }
  if (Peek().kind != TokenKind::kLParen)
    return NewIdent(std::move(name), start);
  Advance();
  ExprPtr call = NewExpr(ExprKind::kCall, start);
  call->name = std::move(name);
  ParseExprList(call.get(), TokenKind::kRParen);
  if (options_.enable_macros && call->name == "has" &&
      call->children.size() == 1) {
    return ExpandHas(std::move(call));
  }
  return call;
}

// Literals, and the error for a token that cannot start an operand.
ExprPtr Parser::ParseLiteral() {
  const int32_t offset = Peek().offset;
  if (fatal_) return Placeholder(offset);
  Token& t = ahead_.front();
  Value value;
  switch (t.kind) {
    case TokenKind::kInt:
      if (t.int_value >
          static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        Report(offset, "integer literal out of range");
        Advance();
        return Placeholder(offset);
      }
      value = Value::Int(static_cast<int64_t>(t.int_value));
      break;
    case TokenKind::kUint:
      value = Value::Uint(t.int_value);
      break;
    case TokenKind::kDouble:
      value = Value::Double(t.double_value);
      break;
    case TokenKind::kString:
      value = Value::String(std::move(t.text));
      break;
    case TokenKind::kBytes:
      value = Value::Bytes(std::move(t.text));
      break;
    case TokenKind::kTrue:
    case TokenKind::kFalse:
      value = Value::Bool(t.kind == TokenKind::kTrue);
      break;
    case TokenKind::kNull:
      break;
    case TokenKind::kError:
      // Already reported by the lexer; stand in for the bad token.
      Advance();
      return Placeholder(offset);
    default:
      Unexpected();
      return Placeholder(offset);
  }
  Advance();
  return NewConst(std::move(value), offset);
}

// ExprList = Expr {"," Expr}, with an optional trailing comma, then `close`
// (')' or ']'). The opening token has been consumed.
void Parser::ParseExprList(Expr* parent, TokenKind close) {
  if (Accept(close)) return;
  while (!fatal_) {
    if (close == TokenKind::kRBracket && Peek().kind == TokenKind::kQuestion) {
      Fatal(Peek().offset, "optional list element '?e' is not supported");
      return;
    }
    const int32_t where = Peek().offset;
    AddChild(parent, ParseExpr(), where);
    if (Accept(TokenKind::kComma)) {
      if (Accept(close)) return;
      continue;
    }
    Expect(close, close == TokenKind::kRParen ? "',' or ')'" : "',' or ']'");
    return;
  }
}

// "{" MapInits "}" where MapInits = Expr ":" Expr {"," Expr ":" Expr},
// optional trailing comma.
ExprPtr Parser::ParseMap() {
  ExprPtr map = NewExpr(ExprKind::kMap, Advance());
  if (Accept(TokenKind::kRBrace)) return map;
  while (!fatal_) {
    if (Peek().kind == TokenKind::kQuestion) {
      Fatal(Peek().offset, "optional map entry '?k: v' is not supported");
      break;
    }
    const int32_t where = Peek().offset;
    AddChild(map.get(), ParseExpr(), where);
    Expect(TokenKind::kColon, "':'");
    AddChild(map.get(), ParseExpr(), where);
    if (Accept(TokenKind::kComma)) {
      if (Accept(TokenKind::kRBrace)) break;
      continue;
    }
    Expect(TokenKind::kRBrace, "',' or '}'");
    break;
  }
  return map;
}

// has(e.f) -> Select{e, f, test_only}.
ExprPtr Parser::ExpandHas(ExprPtr call) {
  ExprPtr arg = std::move(call->children[0]);
  if (arg->kind != ExprKind::kSelect || arg->test_only) {
    Report(arg->offset,
           "invalid argument to has() macro: expected a field selection "
           "such as has(m.f)");
    return Placeholder(call->offset);
  }
  arg->test_only = true;
  arg->offset = call->offset;
  return arg;
}

ExprPtr Parser::ExpandReceiverMacro(ExprPtr call) {
  const size_t args = call->children.size() - 1;
  const std::string& name = call->name;
  MacroKind kind = MacroKind::kNone;
  if (args == 2) {
    if (name == "all") kind = MacroKind::kAll;
    if (name == "exists") kind = MacroKind::kExists;
    if (name == "exists_one") kind = MacroKind::kExistsOne;
    if (name == "map") kind = MacroKind::kMap;
    if (name == "filter") kind = MacroKind::kFilter;
  } else if (args == 3 && name == "map") {
    kind = MacroKind::kMapFilter;
  }
  if (kind == MacroKind::kNone) return call;
  return ExpandComprehension(std::move(call), kind);
}

// The canonical expansions listed in ast.h.
ExprPtr Parser::ExpandComprehension(ExprPtr call, MacroKind kind) {
  const int32_t off = call->offset;
  ExprPtr var = std::move(call->children[1]);
  if (var->kind != ExprKind::kIdent || var->name.starts_with(".")) {
    Report(var->offset, absl::StrCat(call->name,
                                     "() variable name must be a simple "
                                     "identifier"));
    return Placeholder(off);
  }
  if (var->name == kAccumulatorName) {
    Report(var->offset,
           absl::StrCat(call->name, "() variable name '", kAccumulatorName,
                        "' is reserved for the accumulator"));
    return Placeholder(off);
  }
  ExprPtr range = std::move(call->children[0]);
  ExprPtr arg = std::move(call->children[2]);  // predicate or transform
  auto accu = [&] { return NewIdent(kAccumulatorName, off); };
  auto boolean = [&](bool b) { return NewConst(Value::Bool(b), off); };
  auto integer = [&](int64_t i) { return NewConst(Value::Int(i), off); };
  auto singleton = [&](ExprPtr element) {
    ExprPtr list = NewExpr(ExprKind::kList, off);
    AddChild(list.get(), std::move(element), off);
    return list;
  };

  ExprPtr init, condition, step, result;
  switch (kind) {
    case MacroKind::kAll:
      init = boolean(true);
      condition = NewCall("@not_strictly_false", off, off, accu());
      step = NewCall("_&&_", off, off, accu(), std::move(arg));
      result = accu();
      break;
    case MacroKind::kExists:
      init = boolean(false);
      condition = NewCall("@not_strictly_false", off, off,
                          NewCall("!_", off, off, accu()));
      step = NewCall("_||_", off, off, accu(), std::move(arg));
      result = accu();
      break;
    case MacroKind::kExistsOne:
      init = integer(0);
      condition = boolean(true);
      step = NewCall("_?_:_", off, off, std::move(arg),
                     NewCall("_+_", off, off, accu(), integer(1)), accu());
      result = NewCall("_==_", off, off, accu(), integer(1));
      break;
    case MacroKind::kMap:
      init = NewExpr(ExprKind::kList, off);
      condition = boolean(true);
      step = NewCall("_+_", off, off, accu(), singleton(std::move(arg)));
      result = accu();
      break;
    case MacroKind::kMapFilter: {
      ExprPtr transform = std::move(call->children[3]);
      init = NewExpr(ExprKind::kList, off);
      condition = boolean(true);
      step = NewCall(
          "_?_:_", off, off, std::move(arg),
          NewCall("_+_", off, off, accu(), singleton(std::move(transform))),
          accu());
      result = accu();
      break;
    }
    case MacroKind::kFilter:
      init = NewExpr(ExprKind::kList, off);
      condition = boolean(true);
      step = NewCall("_?_:_", off, off, std::move(arg),
                     NewCall("_+_", off, off, accu(),
                             singleton(NewIdent(var->name, var->offset))),
                     accu());
      result = accu();
      break;
    default:
      return call;
  }
  ExprPtr comp = NewExpr(ExprKind::kComprehension, off);
  comp->iter_var = var->name;
  comp->accu_var = kAccumulatorName;
  comp->macro = kind;
  AddChild(comp.get(), std::move(range), off);
  AddChild(comp.get(), std::move(init), off);
  AddChild(comp.get(), std::move(condition), off);
  AddChild(comp.get(), std::move(step), off);
  AddChild(comp.get(), std::move(result), off);
  return comp;
}

// ---- DebugString ----------------------------------------------------------

void AppendQuoted(absl::string_view s, bool bytes, std::string* out) {
  out->append(bytes ? "b\"" : "\"");
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    switch (ch) {
      case '"':
        out->append("\\\"");
        break;
      case '\\':
        out->append("\\\\");
        break;
      case '\n':
        out->append("\\n");
        break;
      case '\r':
        out->append("\\r");
        break;
      case '\t':
        out->append("\\t");
        break;
      default:
        if (c < 0x20 || c == 0x7F || (bytes && c >= 0x80)) {
          absl::StrAppendFormat(out, "\\x%02x", c);
        } else {
          out->push_back(ch);
        }
    }
  }
  out->push_back('"');
}

void AppendConstant(const Value& v, std::string* out) {
  switch (v.kind()) {
    case Kind::kNull:
      out->append("null");
      return;
    case Kind::kBool:
      out->append(v.bool_value() ? "true" : "false");
      return;
    case Kind::kInt:
      absl::StrAppend(out, v.int_value());
      return;
    case Kind::kUint:
      absl::StrAppend(out, v.uint_value(), "u");
      return;
    case Kind::kDouble: {
      char buf[64];
      auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v.double_value());
      std::string s(buf, ec == std::errc() ? end : buf);
      if (s.find_first_of(".enai") == std::string::npos) s.append(".0");
      out->append(s);
      return;
    }
    case Kind::kString:
      AppendQuoted(v.string_value(), false, out);
      return;
    case Kind::kBytes:
      AppendQuoted(v.bytes_value(), true, out);
      return;
    default:
      out->append("<?>");
  }
}

void AppendExpr(const Expr& e, std::string* out) {
  auto list = [&](size_t from, size_t to, const char* sep) {
    for (size_t i = from; i < to; ++i) {
      if (i > from) out->append(sep);
      AppendExpr(e.child(i), out);
    }
  };
  switch (e.kind) {
    case ExprKind::kConstant:
      AppendConstant(e.constant, out);
      return;
    case ExprKind::kIdent:
      out->append(e.name);
      return;
    case ExprKind::kSelect:
      if (e.test_only) out->append("@has(");
      AppendExpr(e.child(0), out);
      absl::StrAppend(out, ".", e.name);
      if (e.test_only) out->append(")");
      return;
    case ExprKind::kCall:
      if (e.has_target) {
        AppendExpr(e.child(0), out);
        absl::StrAppend(out, ".", e.name, "(");
        list(1, e.children.size(), ", ");
      } else {
        absl::StrAppend(out, e.name, "(");
        list(0, e.children.size(), ", ");
      }
      out->append(")");
      return;
    case ExprKind::kList:
      out->append("[");
      list(0, e.children.size(), ", ");
      out->append("]");
      return;
    case ExprKind::kMap:
      out->append("{");
      for (size_t i = 0; i + 1 < e.children.size(); i += 2) {
        if (i > 0) out->append(", ");
        AppendExpr(e.child(i), out);
        out->append(": ");
        AppendExpr(e.child(i + 1), out);
      }
      out->append("}");
      return;
    case ExprKind::kComprehension:
      absl::StrAppend(out, "comprehension(", e.iter_var, ", ");
      AppendExpr(e.child(0), out);
      absl::StrAppend(out, ", ", e.accu_var, ", ");
      list(1, e.children.size(), ", ");
      out->append(")");
      return;
  }
}

}  // namespace

ParseResult Parse(absl::string_view source, const ParseOptions& options) {
  return Parser(source, options).Run();
}

std::string DebugString(const Expr& expr) {
  std::string out;
  AppendExpr(expr, &out);
  return out;
}

}  // namespace tappa::cel
