package io.moemesh.e2e;

import com.google.protobuf.ByteString;
import com.google.protobuf.InvalidProtocolBufferException;
import io.opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest;
import io.opentelemetry.proto.common.v1.KeyValue;
import io.opentelemetry.proto.trace.v1.ResourceSpans;
import io.opentelemetry.proto.trace.v1.ScopeSpans;
import io.opentelemetry.proto.trace.v1.Span;
import java.util.HexFormat;
import java.util.function.Consumer;

/** Decodes an OTLP/HTTP protobuf trace export (what a collector receives) into the spans' ids and names. */
final class OtlpTraces {
    private OtlpTraces() {
    }

    static void decode(byte[] body, Consumer<TracingAcrossServicesTest.Received> out) {
        ExportTraceServiceRequest req;
        try {
            req = ExportTraceServiceRequest.parseFrom(body);
        } catch (InvalidProtocolBufferException e) {
            throw new IllegalArgumentException("not an OTLP trace export", e);
        }
        for (ResourceSpans rs : req.getResourceSpansList()) {
            String service = rs.getResource().getAttributesList().stream()
                    .filter(kv -> kv.getKey().equals("service.name")).map(KeyValue::getValue)
                    .map(v -> v.getStringValue()).findFirst().orElse("");
            for (ScopeSpans ss : rs.getScopeSpansList()) {
                for (Span s : ss.getSpansList()) {
                    out.accept(new TracingAcrossServicesTest.Received(hex(s.getTraceId()), hex(s.getSpanId()),
                            hex(s.getParentSpanId()), s.getName(), service));
                }
            }
        }
    }

    private static String hex(ByteString b) {
        return HexFormat.of().formatHex(b.toByteArray());
    }
}
