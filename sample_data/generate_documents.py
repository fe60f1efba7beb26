"""Write sample_data's two office documents: docs/repair_service_guide.pdf and docs/gear_rental_terms.docx.

Fictional Ridgeline Outfitters documents (like docs/*.md, which generate.py writes), made so document-grounded
QA is shown and tested on real file formats: a two-page PDF with a letterhead, headings, a price table and
page numbers (fpdf2), and a Word file with a title, heading styles, a bulleted list and a table
(python-docx). Dates and zip timestamps are fixed, so a rerun rewrites both files byte for byte:

    python sample_data/generate_documents.py
"""

from __future__ import annotations

import datetime as dt
import io
import zipfile
from pathlib import Path

DOCS = Path(__file__).resolve().parent / "docs"
FIXED = dt.datetime(2024, 6, 11, tzinfo=dt.UTC)

REPAIR = {
    "title": "Repair Service Guide",
    "intro": ("Ridgeline Outfitters repairs tents, backpacks, sleeping bags, jackets and boots at our Boulder "
              "workshop. This guide explains what we repair, what it costs, how long it takes and how to send "
              "gear in. Repairs covered by the warranty are free; everything else is priced below."),
    "sections": [
        ("What we repair", [
            "We repair zippers, buckles, seams, tears up to 15 cm, tent poles, sleeping pad valves and boot "
            "soles. We do not repair stoves, headlamps or anything with a damaged fuel line or battery; those "
            "are replaced under the warranty or recycled.",
            "Gear must be clean and dry when it arrives. A tent or sleeping bag that arrives wet or dirty is "
            "cleaned first for a fee of $25, and the repair starts only after it has dried.",
        ]),
        ("Prices", "table"),
        ("Turnaround", [
            "Standard repairs are finished within 10 business days of the day the gear arrives at the "
            "workshop. Boot resoling takes up to 4 weeks because the soles are glued and pressed in batches.",
            "Rush service finishes a standard repair within 3 business days for an extra $20. Rush service is "
            "not available for boot resoling.",
        ]),
        ("How to send gear in", [
            "Start a repair request on the Repairs page of your account or at any store counter. You receive a "
            "repair number that begins with RPR- and a prepaid shipping label for $6.95, which is refunded when "
            "the repair turns out to be covered by the warranty.",
            "Pack the gear in a box with the repair number written on a note inside. Do not send accessories "
            "such as stuff sacks, stakes or fuel canisters; we cannot return them.",
            "We e-mail a quote before any paid repair. If you decline the quote, we send the gear back for the "
            "$6.95 shipping fee only. Quotes not answered within 30 days are treated as declined.",
        ]),
        ("Repair guarantee", [
            "Every repair is guaranteed for 90 days. If the same repair fails within 90 days of the day we "
            "shipped the gear back, we redo it free of charge, including shipping both ways.",
        ]),
    ],
    "prices": [("Repair", "Price"), ("Zipper slider replacement", "$18"), ("Full zipper replacement", "$45"),
               ("Seam resealing, tent or backpack", "$35"), ("Tear patch, up to 15 cm", "$22"),
               ("Tent pole section splint or replacement", "$15 per section"),
               ("Sleeping pad valve replacement", "$20"), ("Boot resoling", "$95 per pair")],
}

RENTAL = {
    "title": "Gear Rental Terms",
    "intro": ("Ridgeline Outfitters rents tents, sleeping bags, backpacks and snowshoes from our Boulder and Denver "
              "stores. These terms apply to every rental agreement."),
    "sections": [
        ("Rental periods and prices", [
            "Rentals are priced per day, counted from pickup to return. A weekend rental picked up on Friday "
            "after 3 pm and returned by Monday at noon is charged as two days.",
            "table",
        ]),
        ("Deposit", [
            "A refundable deposit of $100 per item is held on a credit card at pickup. The deposit is released "
            "within 3 business days after the gear is returned clean and undamaged.",
        ]),
        ("Late returns", [
            "Gear returned late is charged the daily rate for each extra day, plus a $10 late fee per item. "
            "Gear not returned within 7 days after the agreed return date is treated as lost.",
        ]),
        ("Damage and loss", [
            "Normal wear is expected and free. For damage beyond normal wear we charge the repair price from "
            "our Repair Service Guide, up to the item's replacement value.",
            "Lost or stolen gear is charged at its replacement value minus the deposit already held.",
            "Customers who buy the same item within 14 days of returning a rental get the rental fee back as "
            "store credit.",
        ]),
        ("What to bring at pickup", [
            "a government-issued photo ID;",
            "a credit card in the renter's name for the deposit;",
            "the rental confirmation e-mail or its RNT- number.",
        ]),
    ],
    "prices": [("Item", "Per day", "Per week"), ("Two-person tent", "$18", "$75"), ("Four-person tent", "$26", "$110"),
               ("Sleeping bag, -7 C", "$12", "$50"), ("Backpack, 65 liters", "$10", "$42"),
               ("Snowshoes with poles", "$15", "$60")],
}


def write_pdf(path: Path) -> None:
    from fpdf import FPDF

    doc = REPAIR
    pdf = FPDF(format="Letter")
    pdf.set_creation_date(FIXED)
    pdf.set_title(f"Ridgeline Outfitters {doc['title']}")
    pdf.set_author("Ridgeline Outfitters Customer Care")
    pdf.set_auto_page_break(auto=True, margin=20)
    pdf.set_margins(22, 22, 22)

    def footer() -> None:
        pdf.set_y(-15)
        pdf.set_font("Helvetica", "", 8)
        pdf.cell(0, 5, f"Ridgeline Outfitters - {doc['title']} - effective April 1, 2024 - page {pdf.page_no()}",
                 align="C")

    pdf.footer = footer
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 11)
    pdf.set_text_color(40, 90, 60)
    pdf.cell(0, 6, "RIDGELINE OUTFITTERS", new_x="LMARGIN", new_y="NEXT")
    pdf.set_text_color(0, 0, 0)
    pdf.set_font("Helvetica", "", 8)
    pdf.cell(0, 5, "1200 Pearl Street, Boulder, CO 80302  |  Customer Care", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(6)
    pdf.set_font("Helvetica", "B", 18)
    pdf.cell(0, 10, doc["title"], new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 10.5)
    pdf.multi_cell(0, 5.5, doc["intro"], new_x="LMARGIN", new_y="NEXT")
    for k, (heading, body) in enumerate(doc["sections"]):
        if k == 3:
            pdf.add_page()  # the shipping steps start page 2, as in the printed guide
        pdf.ln(4)
        pdf.set_font("Helvetica", "B", 13)
        pdf.cell(0, 8, heading, new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", "", 10.5)
        if body == "table":
            with pdf.table(col_widths=(110, 50), text_align=("LEFT", "RIGHT"), line_height=6) as table:
                for row in doc["prices"]:
                    cells = table.row()
                    for value in row:
                        cells.cell(value)
            continue
        for para in body:
            pdf.multi_cell(0, 5.5, para, new_x="LMARGIN", new_y="NEXT")
            pdf.ln(2)
    pdf.output(str(path))


def write_docx(path: Path) -> None:
    import docx

    doc = RENTAL
    document = docx.Document()
    props = document.core_properties
    props.title, props.author = f"Ridgeline Outfitters {doc['title']}", "Ridgeline Outfitters Customer Care"
    props.created = props.modified = FIXED.replace(tzinfo=None)
    props.last_modified_by, props.revision = "Ridgeline Outfitters Customer Care", 1
    document.add_paragraph(doc["title"], style="Title")
    document.add_paragraph("Effective May 15, 2024.").runs[0].italic = True
    document.add_paragraph(doc["intro"])
    for heading, body in doc["sections"]:
        document.add_heading(heading, level=1)
        bulleted = heading.startswith("What to bring")
        for para in body:
            if para == "table":
                table = document.add_table(rows=0, cols=len(doc["prices"][0]))
                table.style = "Light Grid Accent 1"
                for row in doc["prices"]:
                    for cell, value in zip(table.add_row().cells, row, strict=True):
                        cell.text = value
                continue
            document.add_paragraph(para, style="List Bullet" if bulleted else None)
    buffer = io.BytesIO()
    document.save(buffer)
    _fix_zip_times(buffer.getvalue(), path)


def _fix_zip_times(data: bytes, path: Path) -> None:
    """Rewrite the .docx zip with one fixed timestamp on every member (python-docx stamps the current time)."""
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            fixed = zipfile.ZipInfo(info.filename, date_time=FIXED.timetuple()[:6])
            fixed.compress_type = zipfile.ZIP_DEFLATED
            dst.writestr(fixed, src.read(info.filename))


def main() -> None:
    DOCS.mkdir(exist_ok=True)
    write_pdf(DOCS / "repair_service_guide.pdf")
    write_docx(DOCS / "gear_rental_terms.docx")
    for name in ("repair_service_guide.pdf", "gear_rental_terms.docx"):
        print(f"wrote {DOCS / name} ({(DOCS / name).stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()
