#include "server/service/status_util.h"

#include "absl/strings/cord.h"
#include "google/protobuf/any.pb.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"

namespace tappa::server {
namespace {

// google.rpc.Status { int32 code = 1; string message = 2;
//                     repeated google.protobuf.Any details = 3; }
// written field by field: the message is small and fixed, and this keeps
// googleapis' protos out of the build.
std::string EncodeRpcStatus(const absl::Status& s) {
  std::string out;
  {
    google::protobuf::io::StringOutputStream stream(&out);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.WriteTag(1 << 3 | 0);
    coded.WriteVarint32(static_cast<uint32_t>(s.code()));
    coded.WriteTag(2 << 3 | 2);
    coded.WriteVarint32(static_cast<uint32_t>(s.message().size()));
    coded.WriteRaw(s.message().data(), static_cast<int>(s.message().size()));
    s.ForEachPayload(
        [&coded](absl::string_view type_url, const absl::Cord& payload) {
          google::protobuf::Any any;
          any.set_type_url(std::string(type_url));
          any.set_value(std::string(payload));
          std::string encoded = any.SerializeAsString();
          coded.WriteTag(3 << 3 | 2);
          coded.WriteVarint32(static_cast<uint32_t>(encoded.size()));
          coded.WriteString(encoded);
        });
  }  // the stream writes its last bytes into `out` when destroyed
  return out;
}

}  // namespace

grpc::Status ToGrpcStatus(const absl::Status& s) {
  if (s.ok()) return grpc::Status::OK;
  auto code = static_cast<grpc::StatusCode>(s.code());
  std::string message(s.message());
  bool has_payload = false;
  s.ForEachPayload([&has_payload](absl::string_view, const absl::Cord&) {
    has_payload = true;
  });
  if (!has_payload) return grpc::Status(code, message);
  return grpc::Status(code, message, EncodeRpcStatus(s));
}

}  // namespace tappa::server
