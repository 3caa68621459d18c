//===- MoeOps.cpp - moe dialect: registration and verifiers ---------------===//
//
// Verifiers share the helpers at the top of this file (StableHLO style): each
// shape rule is written once and reports which operands disagree and how.
// Only the token count T may be dynamic; hidden sizes, expert counts and
// weights are static, because they are properties of the model, not the batch.
//
//===----------------------------------------------------------------------===//

#include "moe/IR/MoeOps.h"
#include "moe/Support/Quant.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/DialectImplementation.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/TypeSwitch.h"
#include <cmath>
#include <limits>

using namespace mlir;
using namespace mlir::moe;

#include "moe/IR/MoeDialect.cpp.inc"
#include "moe/IR/MoeEnums.cpp.inc"

#define GET_ATTRDEF_CLASSES
#include "moe/IR/MoeAttrs.cpp.inc"

#define GET_TYPEDEF_CLASSES
#include "moe/IR/MoeTypes.cpp.inc"

#define GET_OP_CLASSES
#include "moe/IR/MoeOps.cpp.inc"

void MoeDialect::initialize() {
  addOperations<
#define GET_OP_LIST
#include "moe/IR/MoeOps.cpp.inc"
      >();
  registerLoweringOps();
  addTypes<
#define GET_TYPEDEF_LIST
#include "moe/IR/MoeTypes.cpp.inc"
      >();
  addAttributes<
#define GET_ATTRDEF_LIST
#include "moe/IR/MoeAttrs.cpp.inc"
      >();
}

LogicalResult ExpertsType::verify(function_ref<InFlightDiagnostic()> emitError,
                                  int64_t count, int64_t hidden) {
  if (count < 1)
    return emitError() << "expert bank must hold at least one expert, got count "
                       << count;
  if (hidden < 1)
    return emitError() << "expert hidden size must be positive, got " << hidden;
  return success();
}

//===----------------------------------------------------------------------===//
// Unknown attributes (Moe_KnownAttributesOnly)
//===----------------------------------------------------------------------===//

namespace {
/// The attributes a user may write on `op` (its inherent attributes, less
/// the operand segment sizes that the parser fills in).
SmallVector<StringRef> userAttributeNames(Operation *op) {
  SmallVector<StringRef> names;
  for (StringAttr name : op->getName().getAttributeNames())
    if (name.getValue() != "operandSegmentSizes")
      names.push_back(name.getValue());
  return names;
}

/// The name in `names` that `typo` most likely meant: close in spelling
/// (a few edits), or starting the same way (`scale` for `scaling_factor`).
std::optional<StringRef> closestName(StringRef typo, ArrayRef<StringRef> names) {
  std::optional<StringRef> best;
  unsigned bestDistance = ~0u;
  unsigned allowed = std::max<unsigned>(2, typo.size() / 3);
  for (StringRef name : names) {
    unsigned distance = typo.edit_distance(name);
    size_t sharedPrefix = 0;
    while (sharedPrefix < std::min(typo.size(), name.size()) &&
           typo[sharedPrefix] == name[sharedPrefix])
      ++sharedPrefix;
    bool similar = distance <= allowed || sharedPrefix >= 4;
    if (similar && distance < bestDistance) {
      best = name;
      bestDistance = distance;
    }
  }
  return best;
}
} // namespace

LogicalResult mlir::moe::verifyKnownAttributes(Operation *op) {
  for (NamedAttribute attr : op->getDiscardableAttrDictionary()) {
    StringRef name = attr.getName().getValue();
    // A dialect prefix makes it a discardable attribute of that dialect.
    if (name.contains('.'))
      continue;
    SmallVector<StringRef> known = userAttributeNames(op);
    InFlightDiagnostic diag = op->emitOpError() << "has no attribute '" << name << "'";
    if (std::optional<StringRef> meant = closestName(name, known)) {
      diag << " (did you mean '" << *meant << "'?)";
      return diag;
    }
    if (known.empty())
      diag << " (it takes none";
    else
      diag << " (it takes " << llvm::join(known, ", ");
    diag << "; an attribute of another dialect is written with its prefix, as in 'mydialect." << name
         << "')";
    return diag;
  }
  return success();
}

//===----------------------------------------------------------------------===//
// Shared verification helpers
//===----------------------------------------------------------------------===//

namespace {
int64_t dimOf(Value v, unsigned i) {
  return cast<ShapedType>(v.getType()).getDimSize(i);
}
bool isStatic(int64_t d) { return !ShapedType::isDynamic(d); }

/// A named dimension of a named operand, for diagnostics.
struct Dim {
  StringRef operand;
  StringRef name; // "T", "H", "E", "I", "K", "r", "N"
  int64_t size;
};
Dim dim(StringRef operand, StringRef name, Value v, unsigned i) {
  return {operand, name, dimOf(v, i)};
}

/// a and b must agree when both are static.
LogicalResult agree(Operation *op, Dim a, Dim b) {
  if (isStatic(a.size) && isStatic(b.size) && a.size != b.size)
    return op->emitOpError() << a.name << " mismatch: '" << a.operand
                             << "' has " << a.name << " = " << a.size
                             << " but '" << b.operand << "' has " << b.name
                             << " = " << b.size;
  return success();
}

/// A result dimension derived from an operand's: the same size, and dynamic
/// exactly when the operand's is (a static result T over a dynamic operand T
/// would promise a token count the op cannot guarantee).
LogicalResult agreeResult(Operation *op, Dim operand, Dim result) {
  if (failed(agree(op, operand, result)))
    return failure();
  if (isStatic(operand.size) != isStatic(result.size))
    return op->emitOpError() << result.name << " of result '" << result.operand << "' must be "
                             << (isStatic(operand.size) ? "static" : "dynamic") << " like '"
                             << operand.operand << "' (" << operand.name << " = "
                             << (isStatic(operand.size) ? std::to_string(operand.size)
                                                        : std::string("?"))
                             << ")";
  return success();
}

LogicalResult requireStatic(Operation *op, StringRef operand, Value v) {
  auto type = cast<ShapedType>(v.getType());
  if (!type.hasStaticShape())
    return op->emitOpError() << "'" << operand
                             << "' must have a static shape (weights are "
                                "model properties), got "
                             << type;
  return success();
}

/// A static dimension that counts something (experts, paths) must be >= 1.
LogicalResult requirePositive(Operation *op, Dim d, StringRef what) {
  if (d.size < 1)
    return op->emitOpError() << "'" << d.operand << "' must hold at least one "
                             << what << " (" << d.name
                             << " >= 1), got " << d.name << " = " << d.size;
  return success();
}

/// hidden: [T, H] with static H.
LogicalResult verifyHidden(Operation *op, Value hidden, StringRef name = "hidden") {
  if (!isStatic(dimOf(hidden, 1)))
    return op->emitOpError() << "hidden size H of '" << name
                             << "' must be static";
  return success();
}

LogicalResult verifyPositiveFinite(Operation *op, StringRef attr, float v) {
  if (!(v > 0.0f) || !std::isfinite(v))
    return op->emitOpError() << "'" << attr
                             << "' must be positive and finite, got " << v;
  return success();
}

/// ids and weights are one routing: identical [T, K] shapes.
LogicalResult verifyRoutingPair(Operation *op, Value ids, Value weights,
                                StringRef idsName, StringRef wName) {
  if (failed(agree(op, dim(idsName, "T", ids, 0), dim(wName, "T", weights, 0))) ||
      failed(agree(op, dim(idsName, "K", ids, 1), dim(wName, "K", weights, 1))))
    return failure();
  if (!isStatic(dimOf(ids, 1)))
    return op->emitOpError() << "slot count K of '" << idsName
                             << "' must be static";
  return success();
}

/// Common to routers with hidden [T, H], gate [E, H], optional bias [E] and
/// results ids/weights [T, K].
LogicalResult verifyGatedRouter(Operation *op, Value hidden, Value gate,
                                Value bias, Value ids, Value weights,
                                float scalingFactor) {
  if (failed(verifyHidden(op, hidden)) ||
      failed(requireStatic(op, "gate", gate)) ||
      failed(requirePositive(op, dim("gate", "E", gate, 0), "expert")) ||
      failed(agree(op, dim("hidden", "H", hidden, 1), dim("gate", "H", gate, 1))) ||
      failed(verifyRoutingPair(op, ids, weights, "ids", "weights")) ||
      failed(agreeResult(op, dim("hidden", "T", hidden, 0), dim("ids", "T", ids, 0))) ||
      failed(verifyPositiveFinite(op, "scaling_factor", scalingFactor)))
    return failure();
  if (bias && (failed(requireStatic(op, "bias", bias)) ||
               failed(agree(op, dim("gate", "E", gate, 0), dim("bias", "E", bias, 0)))))
    return failure();
  return success();
}

/// K (slots) of the result equals what the op's attribute says.
LogicalResult verifySlots(Operation *op, Value ids, int64_t expected,
                          StringRef why) {
  int64_t k = dimOf(ids, 1);
  if (k != expected)
    return op->emitOpError() << "result slot count K = " << k << " must equal "
                             << why << " (" << expected << ")";
  return success();
}

LogicalResult verifyKInRange(Operation *op, StringRef attr, int64_t k,
                             int64_t numExperts) {
  if (k < 1 || k > numExperts)
    return op->emitOpError() << "'" << attr << "' = " << k
                             << " must be in [1, E] with E = " << numExperts;
  return success();
}

/// A per-expert weight bank [N, rows, cols] against the bank's result type.
LogicalResult verifyBank(Operation *op, StringRef name, Value bank,
                         ExpertsType experts, int64_t rows, StringRef rowName,
                         int64_t cols, StringRef colName) {
  if (failed(requireStatic(op, name, bank)))
    return failure();
  auto shape = cast<ShapedType>(bank.getType()).getShape();
  if (shape[0] != experts.getCount())
    return op->emitOpError() << "'" << name << "' holds " << shape[0]
                             << " experts but the result type says "
                             << experts.getCount();
  if (shape[1] != rows || shape[2] != cols)
    return op->emitOpError() << "'" << name << "' must be [N, " << rowName
                             << ", " << colName << "] = [" << experts.getCount()
                             << ", " << rows << ", " << cols << "], got ["
                             << shape[0] << ", " << shape[1] << ", " << shape[2]
                             << "]";
  return success();
}

LogicalResult verifyMatrix(Operation *op, StringRef name, Value m, int64_t rows,
                           StringRef rowName, int64_t cols, StringRef colName) {
  if (failed(requireStatic(op, name, m)))
    return failure();
  auto shape = cast<ShapedType>(m.getType()).getShape();
  if (shape[0] != rows || shape[1] != cols)
    return op->emitOpError() << "'" << name << "' must be [" << rowName << ", "
                             << colName << "] = [" << rows << ", " << cols
                             << "], got [" << shape[0] << ", " << shape[1]
                             << "]";
  return success();
}

/// Gated activations need w3, plain ones must not have it.
LogicalResult verifyGating(Operation *op, Activation act, bool hasW3,
                           StringRef w3Name = "w3") {
  if (isGated(act) && !hasW3)
    return op->emitOpError() << "gated activation '" << stringifyActivation(act)
                             << "' requires '" << w3Name << "'";
  if (!isGated(act) && hasW3)
    return op->emitOpError() << "plain activation '" << stringifyActivation(act)
                             << "' takes no '" << w3Name << "'";
  return success();
}

/// A skip region: one block taking the compacted tokens [?, H] and yielding
/// the branch [?, H].
LogicalResult verifyBranchRegion(Operation *op, Region &region, int64_t h,
                                 StringRef what) {
  Block &block = region.front();
  if (block.getNumArguments() != 1)
    return op->emitOpError() << what << " must take exactly one argument (the "
                             << "compacted tokens), got "
                             << block.getNumArguments();
  auto argType = dyn_cast<RankedTensorType>(block.getArgument(0).getType());
  if (!argType || argType.getRank() != 2 || !argType.getElementType().isF32() ||
      !argType.isDynamicDim(0) || argType.getDimSize(1) != h)
    return op->emitOpError() << what << " argument must be tensor<?x" << h
                             << "xf32> (the selected tokens, count known at "
                                "run time), got "
                             << block.getArgument(0).getType();
  auto yield = dyn_cast<YieldOp>(block.getTerminator());
  if (!yield)
    return op->emitOpError() << what << " must end with moe.yield";
  auto yType = cast<RankedTensorType>(yield.getValue().getType());
  if (!yType.isDynamicDim(0) || yType.getDimSize(1) != h)
    return yield.emitOpError() << "must yield tensor<?x" << h
                               << "xf32> (one row per selected token), got "
                               << yType;
  return success();
}

LogicalResult verifySameShape(Operation *op, Value a, StringRef aName, Value b,
                              StringRef bName) {
  if (failed(agreeResult(op, dim(aName, "T", a, 0), dim(bName, "T", b, 0))) ||
      failed(agree(op, dim(aName, "H", a, 1), dim(bName, "H", b, 1))))
    return failure();
  return success();
}
} // namespace

std::optional<int64_t> mlir::moe::getRoutingNumExperts(Value ids) {
  Operation *def = ids.getDefiningOp();
  if (!def)
    return std::nullopt;
  std::optional<int64_t> e =
      TypeSwitch<Operation *, std::optional<int64_t>>(def)
          .Case<TopKRouterOp, GroupedTopKRouterOp, TopPRouterOp, ReluRouterOp,
                ExpertChoiceRouterOp, HashRouterOp, CapacityDropOp, CapacityRerouteOp,
                CompressSlotsOp>(
              [](auto op) -> std::optional<int64_t> {
                return op.getNumExperts();
              })
          .Default([](Operation *) { return std::nullopt; });
  // The defining op may not be verified yet (a use before its definition is
  // only rejected later, by the dominance check): trust only a valid E.
  if (e && (!isStatic(*e) || *e < 1))
    return std::nullopt;
  return e;
}

//===----------------------------------------------------------------------===//
// Routers
//===----------------------------------------------------------------------===//

int64_t TopKRouterOp::getNumExperts() { return dimOf(getGate(), 0); }
int64_t GroupedTopKRouterOp::getNumExperts() { return dimOf(getGate(), 0); }
int64_t TopPRouterOp::getNumExperts() { return dimOf(getGate(), 0); }
int64_t ReluRouterOp::getNumExperts() { return dimOf(getGate(), 0); }
int64_t ExpertChoiceRouterOp::getNumExperts() { return dimOf(getGate(), 0); }

LogicalResult TopKRouterOp::verify() {
  if (failed(verifyGatedRouter(*this, getHidden(), getGate(), getBias(),
                               getIds(), getWeights(),
                               getScalingFactor().convertToFloat())) ||
      failed(verifyKInRange(*this, "k", getK(), getNumExperts())))
    return failure();
  return verifySlots(*this, getIds(), getK(), "k");
}

LogicalResult GroupedTopKRouterOp::verify() {
  if (failed(verifyGatedRouter(*this, getHidden(), getGate(), getBias(),
                               getIds(), getWeights(),
                               getScalingFactor().convertToFloat())))
    return failure();
  int64_t e = getNumExperts(), g = getNumGroups(), tg = getTopkGroups();
  if (g < 1 || e % g != 0)
    return emitOpError() << "'num_groups' = " << g
                         << " must be positive and divide E = " << e;
  if (tg < 1 || tg > g)
    return emitOpError() << "'topk_groups' = " << tg
                         << " must be in [1, num_groups] with num_groups = " << g;
  int64_t k = getK(), kept = tg * (e / g);
  if (k < 1 || k > kept)
    return emitOpError() << "'k' = " << k
                         << " must be in [1, topk_groups * E / num_groups] "
                            "with topk_groups * E / num_groups = "
                         << tg << " * " << e << " / " << g << " = " << kept;
  return verifySlots(*this, getIds(), getK(), "k");
}

LogicalResult TopPRouterOp::verify() {
  if (failed(verifyGatedRouter(*this, getHidden(), getGate(), Value(),
                               getIds(), getWeights(),
                               getScalingFactor().convertToFloat())))
    return failure();
  float p = getThreshold().convertToFloat();
  if (!(p > 0.0f && p <= 1.0f))
    return emitOpError() << "'threshold' (top-p) must be in (0, 1], got " << p;
  if (failed(verifyKInRange(*this, "max_k", getMaxK(), getNumExperts())))
    return failure();
  return verifySlots(*this, getIds(), getMaxK(), "max_k");
}

LogicalResult ReluRouterOp::verify() {
  if (failed(verifyGatedRouter(*this, getHidden(), getGate(), Value(),
                               getIds(), getWeights(),
                               getScalingFactor().convertToFloat())))
    return failure();
  return verifyKInRange(*this, "result slot count K", dimOf(getIds(), 1),
                        getNumExperts());
}

LogicalResult ExpertChoiceRouterOp::verify() {
  if (failed(verifyGatedRouter(*this, getHidden(), getGate(), Value(),
                               getIds(), getWeights(),
                               getScalingFactor().convertToFloat())))
    return failure();
  // I64Attr getters are unsigned: compare as signed so -1 is rejected.
  if (int64_t capacity = getCapacity(); capacity < 1)
    return emitOpError() << "'capacity' (tokens per expert) must be positive, got "
                         << capacity;
  return verifySlots(*this, getIds(), getNumExperts(),
                     "E, since a token may be taken by every expert");
}

LogicalResult HashRouterOp::verify() {
  if (int64_t e = getNumExperts(); e < 1)
    return emitOpError() << "'num_experts' must be positive, got " << e;
  if (failed(verifyRoutingPair(*this, getIds(), getWeights(), "ids", "weights")) ||
      failed(agreeResult(*this, dim("token_ids", "T", getTokenIds(), 0),
                   dim("ids", "T", getIds(), 0))))
    return failure();
  return verifySlots(*this, getIds(), 1, "1 (one expert per token)");
}

/// A routing in (in_ids, in_weights) and a routing out (ids, weights) of
/// the same [T, K] shape: capacity_drop, capacity_reroute.
static LogicalResult verifyRoutingTransform(Operation *op, Value inIds, Value inWeights,
                                            Value ids, Value weights) {
  if (failed(verifyRoutingPair(op, inIds, inWeights, "in_ids", "in_weights")) ||
      failed(verifyRoutingPair(op, ids, weights, "ids", "weights")) ||
      failed(agreeResult(op, dim("in_ids", "T", inIds, 0), dim("ids", "T", ids, 0))))
    return failure();
  return agree(op, dim("in_ids", "K", inIds, 1), dim("ids", "K", ids, 1));
}

LogicalResult CapacityDropOp::verify() {
  if (int64_t e = getNumExperts(); e < 1)
    return emitOpError() << "'num_experts' must be positive, got " << e;
  if (failed(verifyPositiveFinite(*this, "capacity_factor",
                                  getCapacityFactor().convertToFloat())) ||
      failed(verifyRoutingTransform(*this, getInIds(), getInWeights(), getIds(), getWeights())))
    return failure();
  if (auto e = getRoutingNumExperts(getInIds());
      e && *e != static_cast<int64_t>(getNumExperts()))
    return emitOpError() << "'num_experts' = " << getNumExperts()
                         << " but the incoming routing chooses among " << *e
                         << " experts";
  return success();
}

LogicalResult RouterScoresOp::verify() {
  if (failed(verifyHidden(*this, getHidden())) ||
      failed(requireStatic(*this, "gate", getGate())) ||
      failed(requirePositive(*this, dim("gate", "E", getGate(), 0), "expert")) ||
      failed(agree(*this, dim("hidden", "H", getHidden(), 1), dim("gate", "H", getGate(), 1))) ||
      failed(agreeResult(*this, dim("hidden", "T", getHidden(), 0),
                         dim("scores", "T", getScores(), 0))) ||
      failed(agree(*this, dim("gate", "E", getGate(), 0), dim("scores", "E", getScores(), 1))))
    return failure();
  return success();
}

int64_t CapacityRerouteOp::getNumExperts() { return dimOf(getScores(), 1); }

LogicalResult CapacityRerouteOp::verify() {
  if (failed(verifyPositiveFinite(*this, "capacity_factor",
                                  getCapacityFactor().convertToFloat())) ||
      failed(verifyRoutingTransform(*this, getInIds(), getInWeights(), getIds(), getWeights())) ||
      failed(agree(*this, dim("in_ids", "T", getInIds(), 0), dim("scores", "T", getScores(), 0))))
    return failure();
  int64_t e = getNumExperts();
  if (!isStatic(e))
    return emitOpError() << "expert count E of 'scores' must be static";
  if (failed(requirePositive(*this, dim("scores", "E", getScores(), 1), "expert")))
    return failure();
  if (auto incoming = getRoutingNumExperts(getInIds()); incoming && *incoming != e)
    return emitOpError() << "'scores' has E = " << e
                         << " but the incoming routing chooses among " << *incoming
                         << " experts";
  return success();
}

int64_t CompressSlotsOp::getNumCompressed() {
  int64_t most = -1;
  for (int64_t c : getCompressed())
    most = std::max(most, c);
  return most + 1;
}

int64_t CompressSlotsOp::getNumExperts() { return getNumFull() + getNumCompressed(); }

LogicalResult CompressSlotsOp::verify() {
  ArrayRef<int64_t> map = getCompressed();
  if (map.empty())
    return emitOpError() << "'compressed' must map at least one full expert";
  // The stand-in's id E + c is an i32 in the routing.
  int64_t maxId = std::numeric_limits<int32_t>::max();
  for (auto [e, c] : llvm::enumerate(map)) {
    if (c < 0)
      return emitOpError() << "'compressed'[" << e << "] = " << c
                           << " must be a compressed expert index >= 0";
    if (c > maxId - int64_t(map.size()))
      return emitOpError() << "'compressed'[" << e << "] = " << c << " gives the stand-in id "
                           << "E + " << c << " (E = " << map.size()
                           << "), beyond the i32 range of expert ids";
  }
  if (failed(verifyRoutingPair(*this, getInIds(), getInWeights(), "in_ids", "in_weights")) ||
      failed(verifyRoutingPair(*this, getIds(), getWeights(), "ids", "weights")) ||
      failed(agreeResult(*this, dim("in_ids", "T", getInIds(), 0), dim("ids", "T", getIds(), 0))) ||
      failed(agree(*this, dim("in_ids", "K", getInIds(), 1), dim("ids", "K", getIds(), 1))))
    return failure();
  int64_t keep = getKeep(), k = dimOf(getInIds(), 1);
  if (keep < 0 || keep > k)
    return emitOpError() << "'keep' = " << keep << " must be in [0, K] with K = " << k;
  if (auto incoming = getRoutingNumExperts(getInIds());
      incoming && *incoming != getNumFull())
    return emitOpError() << "'compressed' maps " << getNumFull()
                         << " full experts but the incoming routing chooses among "
                         << *incoming << " experts";
  return success();
}

LogicalResult PathRouterOp::verify() {
  if (failed(verifyHidden(*this, getHidden())) ||
      failed(requireStatic(*this, "gate", getGate())) ||
      failed(requirePositive(*this, dim("gate", "P", getGate(), 0), "path")) ||
      failed(agree(*this, dim("hidden", "H", getHidden(), 1), dim("gate", "H", getGate(), 1))) ||
      failed(agreeResult(*this, dim("hidden", "T", getHidden(), 0), dim("paths", "T", getPaths(), 0))))
    return failure();
  return success();
}

//===----------------------------------------------------------------------===//
// Experts
//===----------------------------------------------------------------------===//

LogicalResult FfnExpertsOp::verify() {
  ExpertsType type = getExperts().getType();
  if (failed(requireStatic(*this, "w1", getW1())) ||
      failed(verifyGating(*this, getActivation(), getW3() != nullptr)))
    return failure();
  return verifyFfnWeightStorage(*this, getWeightFormat(), getActivationPrecisionOrDefault(),
                                getW1(), getW3(), getW2(), getScales(), type.getCount(),
                                type.getHidden());
}

LogicalResult LoraExpertsOp::verify() {
  ExpertsType type = getExperts().getType();
  if (failed(requireStatic(*this, "w1", getW1())) ||
      failed(requireStatic(*this, "a1", getA1())) ||
      failed(verifyGating(*this, getActivation(), getW3() != nullptr)) ||
      failed(verifyGating(*this, getActivation(), getA3() != nullptr,
                          "w3 adapters")))
    return failure();
  if (!getA3() != !getB3())
    return emitOpError() << "w3 adapters need both A and B";
  float alpha = getAlpha().convertToFloat();
  if (!std::isfinite(alpha))
    return emitOpError() << "'alpha' must be finite, got " << alpha;
  int64_t i = dimOf(getW1(), 0), h = type.getHidden(), r = dimOf(getA1(), 1);
  if (r < 1)
    return emitOpError() << "LoRA rank r must be positive, got " << r;
  if (failed(verifyMatrix(*this, "w1", getW1(), i, "I", h, "H")) ||
      failed(verifyMatrix(*this, "w2", getW2(), h, "H", i, "I")) ||
      failed(verifyBank(*this, "a1", getA1(), type, r, "r", h, "H")) ||
      failed(verifyBank(*this, "b1", getB1(), type, i, "I", r, "r")) ||
      failed(verifyBank(*this, "a2", getA2(), type, r, "r", i, "I")) ||
      failed(verifyBank(*this, "b2", getB2(), type, h, "H", r, "r")))
    return failure();
  if (getW3() &&
      (failed(verifyMatrix(*this, "w3", getW3(), i, "I", h, "H")) ||
       failed(verifyBank(*this, "a3", getA3(), type, r, "r", h, "H")) ||
       failed(verifyBank(*this, "b3", getB3(), type, i, "I", r, "r"))))
    return failure();
  return success();
}

LogicalResult ConstExpertsOp::verify() {
  ExpertsType type = getExperts().getType();
  return verifyMatrix(*this, "values", getValues(), type.getCount(), "N",
                      type.getHidden(), "H");
}

//===----------------------------------------------------------------------===//
// Layer and dense FFN
//===----------------------------------------------------------------------===//

int64_t LayerOp::getNumExperts() {
  int64_t total = 0;
  for (Value bank : getExperts())
    total += cast<ExpertsType>(bank.getType()).getCount();
  return total;
}

LogicalResult LayerOp::verify() {
  if (failed(verifyHidden(*this, getHidden())) ||
      failed(verifyRoutingPair(*this, getIds(), getWeights(), "ids", "weights")) ||
      failed(agree(*this, dim("hidden", "T", getHidden(), 0), dim("ids", "T", getIds(), 0))) ||
      failed(verifySameShape(*this, getHidden(), "hidden", getResult(), "result")))
    return failure();
  if (getExperts().empty())
    return emitOpError() << "needs at least one routed expert bank";
  int64_t h = dimOf(getHidden(), 1);
  for (auto [banks, kind] : {std::pair(getExperts(), "routed"),
                             std::pair(getShared(), "shared")})
    for (auto [idx, bank] : llvm::enumerate(banks)) {
      auto type = cast<ExpertsType>(bank.getType());
      if (type.getHidden() != h)
        return emitOpError() << kind << " expert bank #" << idx
                             << " has hidden size " << type.getHidden()
                             << " but 'hidden' has H = " << h;
    }
  if (auto e = getRoutingNumExperts(getIds()); e && *e != getNumExperts())
    return emitOpError() << "routing chooses among " << *e
                         << " experts but the expert table holds "
                         << getNumExperts();
  return success();
}

LogicalResult FfnOp::verify() {
  if (failed(verifyHidden(*this, getHidden())) ||
      failed(verifySameShape(*this, getHidden(), "hidden", getResult(), "result")) ||
      failed(requireStatic(*this, "w1", getW1())) ||
      failed(verifyGating(*this, getActivation(), getW3() != nullptr)))
    return failure();
  // A dense FFN's weights follow the banks' storage rules without the
  // expert dimension (n = -1).
  return verifyFfnWeightStorage(*this, getWeightFormat(), getActivationPrecisionOrDefault(),
                                getW1(), getW3(), getW2(), getScales(), /*n=*/-1,
                                dimOf(getHidden(), 1));
}

//===----------------------------------------------------------------------===//
// Skips
//===----------------------------------------------------------------------===//

LogicalResult SkipBlockOp::verify() {
  if (failed(verifyHidden(*this, getHidden())) ||
      failed(verifySameShape(*this, getHidden(), "hidden", getResult(), "result")) ||
      failed(requireStatic(*this, "router", getRouter())) ||
      failed(agree(*this, dim("hidden", "H", getHidden(), 1), dim("router", "H", getRouter(), 0))))
    return failure();
  auto fraction = getCapacityFraction();
  auto threshold = getThreshold();
  if (fraction.has_value() == threshold.has_value())
    return emitOpError() << "needs exactly one of 'capacity_fraction' (top "
                            "tokens by score) and 'threshold' (score > t)";
  if (fraction) {
    float f = fraction->convertToFloat();
    if (!(f > 0.0f && f <= 1.0f))
      return emitOpError() << "'capacity_fraction' must be in (0, 1], got " << f;
  }
  if (threshold && !std::isfinite(threshold->convertToFloat()))
    return emitOpError() << "'threshold' must be finite";
  return success();
}

LogicalResult SkipBlockOp::verifyRegions() {
  return verifyBranchRegion(*this, getBody(), dimOf(getHidden(), 1), "body");
}

LogicalResult PathSelectOp::verify() {
  if (failed(verifyHidden(*this, getHidden())) ||
      failed(verifySameShape(*this, getHidden(), "hidden", getResult(), "result")) ||
      failed(agree(*this, dim("hidden", "T", getHidden(), 0), dim("paths", "T", getPaths(), 0))))
    return failure();
  if (getBranches().empty())
    return emitOpError() << "needs at least one branch region besides skip";
  // exit_paths gives 0 (skip) or 1 (run): one branch, the layer.
  if (getPaths().getDefiningOp<ExitPathsOp>() && getBranches().size() != 1)
    return emitOpError() << "'paths' come from moe.exit_paths (0 = skip, 1 = run) but the op has "
                         << getBranches().size() << " branch regions; it needs exactly one";
  // A path_router over P paths picks 0..P-1: P must be 1 (skip) + branches.
  if (auto router = getPaths().getDefiningOp<PathRouterOp>()) {
    int64_t p = dimOf(router.getGate(), 0);
    int64_t expected = static_cast<int64_t>(getBranches().size()) + 1;
    if (isStatic(p) && p >= 1 && p != expected)
      return emitOpError() << "'paths' come from a path_router over P = " << p
                           << " paths but the op has " << getBranches().size()
                           << " branch region(s), so P must be 1 (skip) + "
                           << getBranches().size() << " = " << expected;
  }
  return success();
}

LogicalResult PathSelectOp::verifyRegions() {
  for (auto [idx, region] : llvm::enumerate(getBranches()))
    if (failed(verifyBranchRegion(*this, region, dimOf(getHidden(), 1),
                                  ("branch #" + Twine(idx + 1)).str())))
      return failure();
  return success();
}

//===----------------------------------------------------------------------===//
// Early exit
//===----------------------------------------------------------------------===//

LogicalResult ExitLayersOp::verify() {
  int64_t maxExit = getMaxExit(), minExit = getMinExit();
  if (minExit < 0 || minExit > maxExit)
    return emitOpError() << "needs 0 <= 'min_exit' <= 'max_exit', got min_exit = " << minExit
                         << ", max_exit = " << maxExit;
  if (int64_t d = getDecayPositions(); d < 1)
    return emitOpError() << "'decay_positions' must be positive, got " << d;
  return agreeResult(*this, dim("positions", "T", getPositions(), 0),
                     dim("exits", "T", getExits(), 0));
}

LogicalResult ExitPathsOp::verify() {
  if (int64_t layer = getLayer(); layer < 0)
    return emitOpError() << "'layer' must be non-negative, got " << layer;
  return agreeResult(*this, dim("exits", "T", getExits(), 0), dim("paths", "T", getPaths(), 0));
}

LogicalResult HaltingStackOp::verify() {
  if (failed(verifyHidden(*this, getHidden())) ||
      failed(verifySameShape(*this, getHidden(), "hidden", getResult(), "result")) ||
      failed(agreeResult(*this, dim("hidden", "T", getHidden(), 0),
                         dim("steps", "T", getSteps(), 0))) ||
      failed(requireStatic(*this, "halt_weights", getHaltWeights())) ||
      failed(requireStatic(*this, "halt_bias", getHaltBias())) ||
      failed(agree(*this, dim("hidden", "H", getHidden(), 1),
                   dim("halt_weights", "H", getHaltWeights(), 1))))
    return failure();
  int64_t layers = getLayers().size();
  if (layers == 0)
    return emitOpError() << "needs at least one layer region";
  if (dimOf(getHaltWeights(), 0) != layers || dimOf(getHaltBias(), 0) != layers)
    return emitOpError() << "has " << layers << " layer regions, so 'halt_weights' must be ["
                         << layers << ", H] and 'halt_bias' [" << layers << "], got "
                         << getHaltWeights().getType() << " and " << getHaltBias().getType();
  float eps = getEpsilon().convertToFloat();
  if (!(eps >= 0.0f && eps < 1.0f))
    return emitOpError() << "'epsilon' must be in [0, 1), got " << eps;
  return success();
}

LogicalResult HaltingStackOp::verifyRegions() {
  for (auto [idx, region] : llvm::enumerate(getLayers()))
    if (failed(verifyBranchRegion(*this, region, dimOf(getHidden(), 1),
                                  ("layer #" + Twine(idx)).str())))
      return failure();
  return success();
}

//===----------------------------------------------------------------------===//
// Prepared weights
//===----------------------------------------------------------------------===//

LogicalResult PackLayoutAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                                     int64_t rowStride) {
  if (rowStride < 1)
    return emitError() << "pack_layout row_stride must be positive, got " << rowStride;
  return success();
}

LogicalResult PackOp::verify() {
  auto source = cast<RankedTensorType>(getSource().getType());
  auto packed = cast<RankedTensorType>(getPacked().getType());
  if (!source.hasStaticShape())
    return emitOpError() << "packs weights, whose shapes are static, but the source has type " << source;
  int64_t rowStride = getLayout().getRowStride();
  int64_t cols = source.getShape().back();
  if (rowStride < cols)
    return emitOpError() << "row_stride " << rowStride << " is shorter than a source row ("
                         << cols << " elements)";
  if (packed.getElementType() != source.getElementType())
    return emitOpError() << "result element type " << packed.getElementType()
                         << " differs from the source's " << source.getElementType();
  if (packed.getRank() != source.getRank())
    return emitOpError() << "result rank " << packed.getRank() << " differs from the source's "
                         << source.getRank();
  SmallVector<int64_t> want(source.getShape());
  want.back() = rowStride;
  if (packed.getShape() != ArrayRef<int64_t>(want))
    return emitOpError() << "result type must be " << RankedTensorType::get(want, source.getElementType())
                         << " (the source's shape with rows of row_stride " << rowStride
                         << "), got " << packed;
  return success();
}

//===----------------------------------------------------------------------===//
// FFN weight storage (formats)
//===----------------------------------------------------------------------===//

bool mlir::moe::isWeightType(Type type) {
  auto tt = dyn_cast<RankedTensorType>(type);
  if (!tt || !tt.hasStaticShape() || tt.getRank() < 1)
    return false;
  Type et = tt.getElementType();
  return et.isF32() || et.isBF16() || et.isF16() || et.isInteger(8);
}

int64_t mlir::moe::storedRowElements(WeightFormat format, int64_t k) {
  return ::moe::storedRowElements(::moe::WeightFormat(int(format)), k);
}

Type mlir::moe::storageElementType(MLIRContext *ctx, WeightFormat format) {
  switch (format) {
  case WeightFormat::f32:
    return Float32Type::get(ctx);
  case WeightFormat::bf16:
    return BFloat16Type::get(ctx);
  case WeightFormat::f16:
    return Float16Type::get(ctx);
  default:
    return IntegerType::get(ctx, 8);
  }
}

namespace {

/// One weight: [N, rows, stored(K)] of the format's type for a bank, or
/// [rows, stored(K)] for a dense FFN (n < 0); K a multiple of 32 for the
/// block formats.
LogicalResult verifyStoredWeight(Operation *op, WeightFormat format, StringRef name, Value w,
                                 int64_t n, int64_t rows, StringRef rowName, int64_t k,
                                 StringRef kName) {
  if (failed(requireStatic(op, name, w)))
    return failure();
  bool dense = n < 0;
  StringRef holder = dense ? "ffn" : "bank";
  auto type = cast<RankedTensorType>(w.getType());
  Type elem = storageElementType(op->getContext(), format);
  if (type.getElementType() != elem)
    return op->emitOpError() << "'" << name << "' of a " << stringifyWeightFormat(format) << " "
                             << holder << " must hold " << elem << ", got "
                             << type.getElementType();
  if (::moe::isBlockFormat(::moe::WeightFormat(int(format))) && k % ::moe::kQuantBlock != 0)
    return op->emitOpError() << stringifyWeightFormat(format) << " weights need " << kName
                             << " (" << k << ") to be a multiple of " << ::moe::kQuantBlock
                             << ", the block size";
  SmallVector<int64_t> want = {rows, storedRowElements(format, k)};
  if (!dense)
    want.insert(want.begin(), n);
  ArrayRef<int64_t> shape = type.getShape();
  if (!dense && shape[0] != n)
    return op->emitOpError() << "'" << name << "' holds " << shape[0]
                             << " experts but the result type says " << n;
  if (shape == ArrayRef<int64_t>(want))
    return success();
  auto list = [](ArrayRef<int64_t> v) {
    std::string out = "[";
    for (auto [i, d] : llvm::enumerate(v))
      out += (i ? ", " : "") + std::to_string(d);
    return out + "]";
  };
  std::string got = list(want) + ", got " + list(shape);
  std::string lead = dense ? "[" : "[N, ";
  if (format == WeightFormat::f32)
    return op->emitOpError() << "'" << name << "' must be " << lead << rowName << ", " << kName
                             << "] = " << got;
  return op->emitOpError() << "'" << name << "' of a " << stringifyWeightFormat(format) << " "
                           << holder << " must be " << lead << rowName << ", stored(" << kName
                           << ")] = " << got;
}

/// int8 row scales: one f32 per row of each weight, [N, rows] for a bank,
/// [rows] for a dense FFN (n < 0).
LogicalResult verifyRowScales(Operation *op, WeightFormat format, ValueRange scales, bool gated,
                              int64_t n, int64_t inter, int64_t hidden) {
  if (format != WeightFormat::int8) {
    if (!scales.empty())
      return op->emitOpError() << "scales are only for int8 weights, not "
                               << stringifyWeightFormat(format);
    return success();
  }
  bool dense = n < 0;
  SmallVector<std::pair<StringRef, int64_t>> want = {{"w1", inter}};
  if (gated)
    want.push_back({"w3", inter});
  want.push_back({"w2", hidden});
  if (scales.size() != want.size())
    return op->emitOpError() << "int8 weights need " << want.size() << " scales (one "
                             << (dense ? "[rows]" : "[N, rows]")
                             << " f32 tensor per weight), got " << scales.size();
  for (auto [s, w] : llvm::zip(scales, want)) {
    auto shape = cast<ShapedType>(s.getType()).getShape();
    if (dense && shape[0] != w.second)
      return op->emitOpError() << "the scales of '" << w.first << "' must be [rows] = ["
                               << w.second << "], got [" << shape[0] << "]";
    if (!dense && (shape[0] != n || shape[1] != w.second))
      return op->emitOpError() << "the scales of '" << w.first << "' must be [N, rows] = [" << n
                               << ", " << w.second << "], got [" << shape[0] << ", " << shape[1]
                               << "]";
  }
  return success();
}

LogicalResult verifyActivationPrecision(Operation *op, WeightFormat format,
                                        ActivationPrecision activations, int64_t inter,
                                        int64_t hidden) {
  switch (activations) {
  case ActivationPrecision::f32:
    return success();
  case ActivationPrecision::bf16:
    if (format != WeightFormat::bf16)
      return op->emitOpError() << "bf16 activations need bf16 weights, not "
                               << stringifyWeightFormat(format);
    return success();
  case ActivationPrecision::q8_0:
    if (format != WeightFormat::int8 && format != WeightFormat::q8_0 &&
        format != WeightFormat::q4_0)
      return op->emitOpError() << "q8_0 activations need int8, q8_0 or q4_0 weights, not "
                               << stringifyWeightFormat(format);
    if (hidden % ::moe::kQuantBlock != 0 || inter % ::moe::kQuantBlock != 0)
      return op->emitOpError() << "q8_0 activations need H (" << hidden << ") and I (" << inter
                               << ") to be multiples of " << ::moe::kQuantBlock;
    return success();
  }
  return success();
}

} // namespace

LogicalResult mlir::moe::verifyFfnWeightStorage(Operation *op, WeightFormat format,
                                                ActivationPrecision activations, Value w1,
                                                Value w3, Value w2, ValueRange scales,
                                                int64_t n, int64_t hidden) {
  if (failed(requireStatic(op, "w1", w1)))
    return failure();
  int64_t inter = cast<ShapedType>(w1.getType()).getDimSize(n < 0 ? 0 : 1);
  if (failed(verifyStoredWeight(op, format, "w1", w1, n, inter, "I", hidden, "H")) ||
      failed(verifyStoredWeight(op, format, "w2", w2, n, hidden, "H", inter, "I")))
    return failure();
  if (w3 && failed(verifyStoredWeight(op, format, "w3", w3, n, inter, "I", hidden, "H")))
    return failure();
  if (failed(verifyRowScales(op, format, scales, w3 != nullptr, n, inter, hidden)))
    return failure();
  return verifyActivationPrecision(op, format, activations, inter, hidden);
}
