package io.moemesh.router.reports;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatCode;

import io.moemesh.router.support.TestRoutes;
import java.util.ArrayList;
import java.util.List;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.Combinators;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;

/** Whatever a gateway reports, the route book either ingests it whole or refuses it whole, naming a field. */
class RouteBookFuzzTest {

    @Property(tries = 300)
    void anyReport_isIngestedWhole_orRefusedWhole_withAFieldName(@ForAll("reports") List<ReportedToken> report) {
        RouteBook book = TestRoutes.book(64);
        try {
            int n = book.ingest(report);
            assertThat(n).isEqualTo(report.size());
            assertThat(book.ingested()).isEqualTo(report.size());
        } catch (IllegalArgumentException e) {
            assertThat(e.getMessage()).startsWith("samples[");
            assertThat(book.ingested()).isZero();
            assertThat(book.windowSize()).isZero();
        }
        assertThatCode(() -> book.stats(1)).doesNotThrowAnyException();
    }

    @Provide
    Arbitrary<List<ReportedToken>> reports() {
        Arbitrary<Long> smallish = Arbitraries.longs().between(-2, 9);
        Arbitrary<ReportedLayer> layer = Combinators.combine(smallish,
                smallish.array(long[].class).ofMinSize(0).ofMaxSize(3),
                Arbitraries.floats().between(-1, 2).injectNull(0).map(f -> f == null ? Float.NaN : f)
                        .array(float[].class).ofMaxSize(3))
                .as(ReportedLayer::new);
        Arbitrary<ReportedToken> token = Combinators.combine(Arbitraries.strings().alpha().ofMaxLength(3),
                        Arbitraries.longs().between(0, 100), Arbitraries.integers().between(-3, 600),
                        layer.list().ofMaxSize(5))
                .as((r, p, t, ls) -> new ReportedToken(r, p, t, new ArrayList<>(ls)));
        return token.list().ofMaxSize(4);
    }
}
