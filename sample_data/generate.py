#!/usr/bin/env python3
"""Deterministic generator for the Fine-Tuning Data Studio sample corpus.

Ridgeline Outfitters is a fictional outdoor-gear retailer; every conversation, person, address,
card number and policy here is invented for this project (Apache-2.0).

Run:  python3 sample_data/generate.py
It rewrites every file next to it (support_chat.jsonl, faq_alpaca.json, tickets_sharegpt.json,
product_qa.jsonl, claims.csv, docs/*.md, malformed/broken_chat.jsonl, planted.json) from a fixed
seed using only the standard library, so two runs give byte-identical files.  It checks the planted
phenomena (duplicates, near duplicates, paraphrases, PII) and exits non-zero if any check fails.
"""

from __future__ import annotations

import csv
import io
import json
import random
import re
import sys
import unicodedata
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
SEED = 20240611

# ----------------------------------------------------------------------------- policy numbers
# Every answer below is written from these numbers, and the policy documents state them.
RETURN_DAYS = 60
RESTOCK_PCT = 15
NO_RECEIPT_LOOKBACK_DAYS = 90
RETURN_LABEL_FEE = "$6.95"
REFUND_PROCESS_DAYS = "3 business days"
BANK_DAYS = "3-5 business days"
PRICE_ADJUST_DAYS = 14
WARRANTY_YEARS = 2
SEAM_YEARS = 5
BATTERY_YEARS = 1
CLAIM_REVIEW_DAYS = "5 business days"
FREE_SHIP_OVER = "$75"
STANDARD_FEE = "$7.95"
STANDARD_DAYS = "3-5 business days"
EXPRESS_FEE = "$19.95"
EXPRESS_DAYS = "1-2 business days"
REMOTE_DAYS = "5-9 business days"
CANADA_FEE = "$14.95"
CANADA_DAYS = "7-12 business days"
DAMAGE_REPORT_DAYS = 7
CANCEL_WINDOW = "1 hour"

# ----------------------------------------------------------------------------- documents
DOCS: dict[str, str] = {}

DOCS["returns_policy.md"] = """# Ridgeline Outfitters Returns Policy

*Effective March 1, 2024. This policy covers purchases made at ridgelineoutfitters.example, by phone,
and in any Ridgeline Outfitters store in the United States.*

We want every piece of gear you buy from us to earn its place in your pack. If something is not right,
this page explains exactly what you can return, how long you have, and what it costs.

## The 60-day return window

You can return most items within **60 days** of delivery (or of purchase, for in-store sales) for a
refund to the original payment method. To use the standard return window you need proof of purchase:
the order number (format `RO-` followed by seven digits), the emailed order confirmation, or the printed
store receipt.

- **Unused items** in their original condition, with tags attached, receive a **full refund** of the
  price paid.
- **Used items** are still accepted within 60 days, but a **15% restocking fee** is deducted from the
  refund. We inspect every used item and clean it before it is resold as certified used gear.
- **Defective items are never charged the restocking fee.** If the item failed because of a defect in
  materials or workmanship, you get the full price back (or a replacement, if you prefer), even if you
  used it.

After 60 days we can no longer take an item back as a return. If it has a defect, it is still covered by
the warranty described in our Warranty Policy (2 years for most products, 5 years for tent and backpack
seams).

## Returns without a receipt

If we cannot find your order by order number, email address, or the card you paid with, we can still
help. Returns without proof of purchase are refunded as **store credit** at the item's **lowest selling
price in the last 90 days**. A government-issued photo ID is required, and the 15% restocking fee still
applies to used items.

## Exchanges

Size and color exchanges are free within the 60-day window. Start the exchange online or in a store;
we ship the replacement with free standard shipping as soon as the original item is scanned by the
carrier, so you are not without gear for long. Exchanges for a different product are handled as a
return plus a new order.

## Shipping your return

- **In store:** returning an online order in any store is always free.
- **Prepaid label:** request a label from the Returns page. A **$6.95 label fee** is deducted from the
  refund.
- **Free label:** if the item is defective, damaged in transit, or we shipped the wrong item, the
  label is free.

Pack the item securely; we are not responsible for items lost on the way to us when you use your own
carrier, so keep your tracking number.

## Refund timing

Returns are inspected and refunded within **3 business days** of arriving at our returns center in
Ogden, Utah. Banks and card issuers usually need another **3-5 business days** to show the credit on
your statement. Original shipping charges are refunded only when the return is due to our error or a
defect.

## Items that cannot be returned

- **Final Sale** clearance items, which are marked "Final Sale" on the product page and the receipt.
  They are still covered by the warranty.
- **Fuel canisters** and liquid fuel once they have shipped, because they are regulated hazardous
  materials.
- Opened food items and water-treatment tablets.
- Gift cards.

## Gifts

A gift recipient can return an item with the gift receipt or the order number. The refund is issued as
a Ridgeline gift card in the recipient's name, so the person who bought it is not notified.

## Price adjustments

If the price of an item drops on our website within **14 days** of your purchase, contact us once and
we will refund the difference to your original payment. Price adjustments do not apply to clearance
events or to other retailers' prices.

## Quick reference

| Situation | Outcome |
|---|---|
| Unused, within 60 days, with receipt | Full refund |
| Used, within 60 days, with receipt | Refund minus 15% restocking fee |
| Defective, within 60 days | Full refund or replacement, no fee |
| No receipt | Store credit at lowest price in last 90 days |
| After 60 days | Not returnable; warranty may apply |
| Prepaid return label | $6.95 deducted (free for defects and our errors) |
"""

DOCS["warranty_policy.md"] = """# Ridgeline Outfitters Warranty Policy

*Effective March 1, 2024.*

Everything we sell is built to be used hard. If it fails because of how it was made, we will make it
right. This page explains what the warranty covers, for how long, and how to file a claim.

## Coverage periods

| What | Coverage |
|---|---|
| Most products (clothing, boots, sleeping bags, pads, stoves, headlamps, poles, accessories) | **2-year limited warranty** |
| Seams and seam tape on **tents** and **backpacks** | **5 years** |
| Rechargeable batteries in headlamps and lanterns | **1 year** |

Coverage starts on the date of purchase shown on your receipt or order confirmation and applies to the
**original purchaser** only; it does not transfer when gear is sold or given away.

## What the warranty covers

The limited warranty covers **defects in materials and workmanship**, for example:

- zippers or buckles that fail under normal use;
- seams that separate or seam tape that peels;
- a boot sole that delaminates from the upper;
- a stove valve or igniter that stops working;
- a headlamp that no longer switches on although the battery is charged;
- tent poles that crack without being overloaded.

## What it does not cover

- **Normal wear and tear**, such as abraded fabric, worn boot tread, or down that has lost loft after
  years of use.
- Damage from **accidents, misuse, or improper care**: melting from a campfire, a tent pitched in
  winds beyond its rating, a sleeping bag stored compressed for months, a boot dried on a heater.
- **UV degradation** of fabrics left pitched for long periods.
- **Animal damage**, including rodents chewing through packs.
- Items that have been **modified** or repaired by someone other than Ridgeline Outfitters.
- Water damage to electronics beyond their rated protection (for example, submerging an IPX4
  headlamp).

## How to file a claim

A claim needs three things:

1. Your **order number** (`RO-` and seven digits) or a copy of the store receipt.
2. **Photos of the defect**: at least one photo of the whole item and one close-up of the problem.
3. A short description of what happened and when you first noticed it.

Submit them on the Warranty page or by email. You will receive a **claim number** in the format
`CLM-` followed by six digits within 1 business day. Please quote it in every message about the claim.
Our gear specialists review each claim within **5 business days**.

## What happens next

If the claim is approved we will, at our option:

- **repair** the item in our Ogden, Utah repair shop (typical turnaround 2-3 weeks);
- **replace** it with the same product, or the closest current equivalent if it has been
  discontinued; or
- issue **store credit** for the price paid.

For approved claims we email a **prepaid shipping label**, and replacements ship free by standard
shipping (3-5 business days). You do not pay to send a defective item to us.

## Out-of-warranty repairs

When a problem is not covered, or the warranty period has ended, our repair shop can usually still help.
Flat-rate repairs start at **$20** (for example, a zipper slider replacement). Tent pole sections are
$15 each, and boot resoling is $65. We always send a quote before any paid work begins.

## Defects found within 60 days

A defective item found within the 60-day return window can also simply be returned for a full refund,
with no restocking fee and a free return label. See the Returns Policy.

## Examples

- A tent fly seam that starts leaking in year three is covered (5-year seam coverage).
- A backpack hip-belt buckle that cracks in month 14 is covered (2-year warranty).
- A jacket torn on a branch is not covered, but our repair shop can patch it for a flat fee.
- A headlamp battery that will not hold a charge after 18 months is outside the 1-year battery
  coverage; replacement batteries are sold separately.
"""

DOCS["shipping_policy.md"] = """# Ridgeline Outfitters Shipping Policy

*Effective March 1, 2024.*

## Shipping options and costs

| Method | Delivery time | Cost |
|---|---|---|
| Standard | **3-5 business days** | **Free on orders over $75**, otherwise $7.95 |
| Express | **1-2 business days** | $19.95 |
| Alaska, Hawaii, PO boxes, APO/FPO | 5-9 business days | Standard rates apply |
| Canada | 7-12 business days | $14.95 flat; duties and taxes collected at checkout |

The free-shipping threshold is measured after discounts and before tax. Delivery times are counted from
the day the order leaves our warehouse, not from the day it is placed. We do not ship outside the United
States and Canada.

## Processing

Orders placed before **1 p.m. Eastern time** on a business day leave our warehouse the same day; later
orders ship the next business day. Orders are not processed on weekends or US federal holidays. Large
orders may be split into several packages at no extra cost; each package has its own tracking number.

## Tracking

When your order ships we send a confirmation email with a tracking link. Tracking can take up to
**24 hours** to show the first scan. You can also look up any order with the order number (`RO-` plus
seven digits) and the email address used at checkout on the Order Status page.

## Changing or cancelling an order

You can change the shipping address or cancel an order within **1 hour** of placing it, as long as it
has not started processing. After that it is on its way to the carrier: you can refuse the delivery or
return the items using our Returns Policy. We cannot redirect a package once the carrier has it, but you
can often request a hold at a carrier location from the carrier's own tracking page.

## Restrictions

- **Fuel canisters** and liquid fuel ship by ground only, to addresses in the contiguous United States.
  Orders containing fuel cannot use express shipping and cannot ship to Alaska, Hawaii, PO boxes, or
  Canada.
- Express shipping is not available to PO boxes or APO/FPO addresses.
- Oversized items (for example, the Basecamp 4 tent) may need an extra business day to leave the
  warehouse.

## Damaged, missing, or wrong items

- **Damaged in transit:** report it within **7 days** of delivery with photos of the box and the item.
  We will send a replacement at no cost, and a free return label for the damaged item.
- **Wrong item:** we will ship the right item right away with free express shipping and send a free
  return label for the wrong one.
- **Missing package:** if tracking shows no movement for 5 business days, or shows "delivered" but you
  cannot find it after checking with neighbors and your mailroom, contact us. We open a trace with the
  carrier, and if the package is not found within 3 business days we ship a replacement or refund you.

## Backorders and pre-orders

Items on backorder show an expected ship date on the product page. You are charged only when the item
ships. If the date slips by more than 14 days we email you and you can cancel at no cost.

## Shipping charges on returns

Standard shipping charges are not refunded when you return an order, unless the return is because of a
defect or our mistake. If a return brings an order below the $75 free-shipping threshold, we do not
charge you shipping after the fact.

## Quick answers

- *How much is shipping?* Free standard shipping over $75; $7.95 below that; express is $19.95.
- *How fast is it?* Standard 3-5 business days, express 1-2 business days after the order ships.
- *Can I change my address?* Within 1 hour of ordering, if the order has not started processing.
- *My box arrived crushed.* Send photos within 7 days and we will replace the item.
"""

DOCS["product_care.md"] = """# Ridgeline Outfitters Product Care Guide

Good care keeps gear working for years and keeps your warranty valid: damage from improper care is not
covered (see the Warranty Policy). These are the care steps our repair shop recommends.

## Tents

- **Dry before storing.** Pitch or hang the tent until fly, body, and footprint are fully dry; storing a
  damp tent for even a few days can cause mildew and make the coatings peel.
- **Clean by hand** with a sponge, cool water, and a non-detergent soap. Never machine wash or
  machine dry a tent.
- **Store loosely** in a large cotton sack in a cool, dry place rather than tightly rolled.
- **Re-seal seams** with seam sealer if you see the tape lifting; seam failures are covered for 5 years.
- Keep poles assembled only while pitched; fold them from the middle section outward so the shock
  cord wears evenly.

## Sleeping bags

- **Store uncompressed** in the large mesh storage sack that comes with the bag. The stuff sack is for
  the trail only. Months of compression permanently reduce loft and warmth.
- **Wash rarely**, about once a season of heavy use. Use a front-loading machine (no center agitator)
  on a gentle cycle with cool water and a down-specific wash for down bags, or a technical wash for
  synthetic bags.
- **Dry on low heat** for 2-3 hours with two or three clean tennis balls to break up down clumps. Make
  sure the bag is completely dry before storing.
- Temperature ratings: our bags list a **limit** rating (the lowest temperature for a warm sleeper in a
  curled position) and a **comfort** rating (about 9 to 10 degrees F warmer). Choose by the comfort
  rating if you sleep cold.

## Boots and trail shoes

- Brush off mud and rinse after each trip, then remove the insoles and let the boots **air dry at room
  temperature**. Never dry boots next to a heater, stove, or campfire: heat breaks down the adhesives
  and can cause the sole to separate.
- Restore water repellency with a spray-on treatment when water stops beading on the upper. Treat
  full-grain leather with a leather conditioner once or twice a season.
- Leather boots need a **break-in** of roughly 20 to 30 miles of easy walking before a long trip.

## Jackets and rainwear

- Dirt and body oils clog waterproof-breathable fabrics. Wash rain shells with a **technical wash**, not
  regular detergent or fabric softener, on a warm gentle cycle.
- **Tumble dry on low for 20 minutes** to reactivate the durable water repellent (DWR) finish. When
  water no longer beads up, apply a spray-on DWR.
- Down jackets follow the sleeping-bag routine: down wash, low heat, tennis balls.

## Stoves

- Let the stove cool completely before packing it.
- Keep the fuel jet clean; if the flame turns yellow or sputters, clear the jet with the pricker tool.
- Check the **O-ring** at the canister connection before each trip and replace it if it is cracked.
- Only use the fuel type listed for your stove; never use a canister stove inside a closed tent.

## Backpacks

- Empty every pocket, shake out grit, and **hand wash** in a tub with mild soap; never machine wash a
  pack with a frame or hip belt.
- Hang to dry out of direct sunlight; UV exposure weakens fabric and is not covered by the warranty.
- Re-adjust the torso length at the start of each season; a correct fit carries the load on the hips.

## Headlamps

- Remove disposable batteries before long storage to avoid corrosion. Charge rechargeable models to
  about 50% before storing them for more than a month.
- Water ratings: **IPX4** resists splashing and rain from any direction; **IPX7** survives temporary
  submersion to 1 meter for 30 minutes. Rinse off salt water with fresh water.
- Rechargeable batteries are covered for 1 year; the rest of the headlamp for 2 years.

## Water filters

- **Backflush** the filter after every trip with clean water using the included syringe.
- **Never let a used filter freeze.** Ice can crack the hollow fibers without any visible sign; sleep
  with the filter in your bag on cold nights. A filter that has frozen should be replaced.

## Sleeping pads

- Inflate with the pump sack rather than your breath to keep moisture out of the pad.
- Store unrolled with the valve open, under a bed or in a closet.
- Small punctures can be fixed with the included patch kit; find leaks by submerging the inflated pad in
  a bathtub and watching for bubbles.
"""


def write_docs() -> None:
    d = HERE / "docs"
    d.mkdir(exist_ok=True)
    for name, text in DOCS.items():
        (d / name).write_text(text, encoding="utf-8", newline="\n")


# ----------------------------------------------------------------------------- catalog
def P(name, kind, price, weight, rating, features):
    return {"name": name, "kind": kind, "price": price, "weight": weight, "rating": rating, "features": features}


PRODUCTS = [
    P("Summit Ridge 2", "tent", "$349", "4 lb 2 oz", "a 3,000 mm polyurethane-coated fly and a 5,000 mm floor",
      ["It is a freestanding three-season tent with two doors and two vestibules, so neither sleeper has to climb over the other.",
       "Two people fit on the 29-square-foot floor with regular 20-inch pads side by side.",
       "Setup takes about five minutes with the color-coded hub poles."]),
    P("Basecamp 4", "tent", "$429", "9 lb 8 oz", "a 2,000 mm fly with taped seams",
      ["With 74 inches of peak height most adults can stand up inside, which makes rainy days with kids much easier.",
       "The floor fits two queen-size air mattresses, and a room divider splits it into two sleeping areas.",
       "It is a car-camping tent, so it is not meant for backpacking or for exposed winter camping."]),
    P("Featherline 1", "tent", "$299", "2 lb 6 oz", "a silicone-coated 20-denier fly rated to 1,800 mm",
      ["It pitches with a single trekking pole instead of dedicated tent poles, which is how it stays so light.",
       "It is not freestanding, so you need six stakes to pitch it properly on hard or rocky ground.",
       "The interior is 88 inches long, enough for hikers up to about 6 foot 4."]),
    P("Stormhold 3", "tent", "$649", "7 lb 1 oz", "a 3,000 mm fly and a 10,000 mm bathtub floor",
      ["It is a four-season dome with four crossing poles and snow flaps that hold up to heavy snow loads and strong wind.",
       "The front vestibule is large enough to cook in with the doors open, though we never recommend running a stove inside the tent body.",
       "Three people fit with wide pads, and the extra room makes it a favorite for two climbers with winter gear."]),
    P("Alpine Ember 15", "bag", "$379", "2 lb 1 oz", "a 15°F limit rating and a 24°F comfort rating",
      ["It is filled with 800-fill-power responsibly sourced down treated to resist moisture.",
       "The mummy cut has a draft collar and a contoured hood that cinches with one hand.",
       "Regular fits people up to 6 feet and Long fits up to 6 foot 6."]),
    P("Trailhead 30", "bag", "$149", "2 lb 9 oz", "a 30°F limit rating and a 39°F comfort rating",
      ["The synthetic insulation keeps insulating when it gets damp, which is handy for canoe trips and humid climates.",
       "It has a semi-rectangular cut with extra room at the knees for side sleepers.",
       "A full-length two-way zipper lets you vent it on warm nights or open it flat as a quilt."]),
    P("Polar Vault 0", "bag", "$599", "3 lb 4 oz", "a 0°F limit rating and a 10°F comfort rating",
      ["It uses 850-fill-power down with baffles built to stop the down from shifting away from your core.",
       "The shell is a water-resistant 15-denier nylon that sheds frost and tent condensation.",
       "It is our warmest bag and is meant for winter camping and high alpine trips."]),
    P("Drift 45 Quilt", "bag", "$109", "1 lb 6 oz", "a 45°F limit rating",
      ["It is a backless quilt that straps onto your sleeping pad, which saves weight for warm-weather hikers.",
       "The footbox closes with a drawcord and snaps, and opens flat as a blanket.",
       "It packs down to about the size of a one-liter water bottle."]),
    P("Switchback Mid WP", "boot", "$189", "2 lb 8 oz per pair", "a waterproof-breathable membrane",
      ["It runs about half a size small, so most customers order half a size up from their street shoe.",
       "The lugged rubber outsole has a heel brake for steep descents.",
       "It is light enough for day hikes but supportive enough for weekend trips with a moderate pack."]),
    P("Granite Trek", "boot", "$239", "3 lb 2 oz per pair", "full-grain leather with a waterproof lining",
      ["It is a stiff backpacking boot built for heavy loads and rough, off-trail ground.",
       "It fits true to size with a roomy toe box, and it comes in regular and wide widths.",
       "Expect a break-in period of roughly 20 to 30 miles before it feels fully comfortable."]),
    P("Scree Runner", "boot", "$139", "1 lb 12 oz per pair", "a breathable mesh upper that is not waterproof",
      ["It is a trail-running shoe with a 6 mm drop and a rock plate under the forefoot.",
       "Because it is not waterproof it dries quickly after stream crossings.",
       "It fits true to size with a medium-width forefoot."]),
    P("Cloudburst Rain Shell", "jacket", "$179", "9.8 oz", "a 20,000 mm waterproof rating with fully taped seams",
      ["It is a 2.5-layer shell with pit zips for venting on climbs.",
       "The hood adjusts in three places and fits over a climbing helmet.",
       "It packs into its own chest pocket, which doubles as a stuff sack."]),
    P("Ember Down Hoody", "jacket", "$249", "11 oz", "800-fill-power down insulation",
      ["It is a midweight down layer for cold camps and belays, not a waterproof shell.",
       "It fits trim enough to layer under a rain shell, so many people stay with their usual size.",
       "The shell fabric has a water-repellent finish that handles light snow but not steady rain."]),
    P("Windward Fleece", "jacket", "$89", "14 oz", "200-weight recycled polyester fleece",
      ["It is a classic full-zip fleece that works as a midlayer or on its own on cool evenings.",
       "The fit is relaxed, so size down if you want to wear it under a snug shell.",
       "It can go in the washing machine on a normal cycle."]),
    P("Storm Parka", "jacket", "$399", "1 lb 4 oz", "a 3-layer 28,000 mm waterproof fabric",
      ["It is our most protective shell, built for multi-day storms and winter mountaineering.",
       "It is cut longer in the back to cover a harness and keep a seated hiker dry.",
       "Two-way front and pit zips let you dump heat quickly on steep approaches."]),
    P("Blaze Micro Stove", "stove", "$59", "2.9 oz", "about 3.5 minutes to boil one liter of water",
      ["It screws onto standard threaded isobutane-propane canisters, sold separately.",
       "It has a built-in piezo igniter, but carry a lighter as a backup in cold or wet weather.",
       "The pot supports fold down so the stove fits inside most 750 ml mugs."]),
    P("Basecamp Duo Stove", "stove", "$129", "11 lb", "two 10,000 BTU burners",
      ["It is a two-burner car-camping stove that runs on standard 16.4 oz propane cylinders.",
       "Wind panels on three sides keep the flame steady at picnic tables.",
       "The grate is wide enough for a 12-inch skillet and a pot at the same time."]),
    P("Torrent Cook System", "stove", "$139", "13.5 oz", "about 2 minutes to boil half a liter",
      ["It is an integrated canister system with a 1-liter insulated pot that locks onto the burner.",
       "A heat-exchanger ring on the pot cuts fuel use noticeably in wind.",
       "The canister, burner, and stabilizer legs all nest inside the pot for packing."]),
    P("Traverse 65", "pack", "$279", "4 lb 6 oz", "65 liters of capacity",
      ["The suspension adjusts to torso lengths from 16 to 21 inches.",
       "It carries loads of up to about 45 pounds comfortably.",
       "There is a sleeve for a 3-liter hydration reservoir and a zippered sleeping-bag compartment."]),
    P("Daybreak 28", "pack", "$119", "1 lb 14 oz", "28 liters of capacity",
      ["It is a daypack with a ventilated mesh back panel and a hip belt with two zippered pockets.",
       "It is hydration-compatible and has an integrated rain cover in the bottom pocket.",
       "One size fits torso lengths from 15 to 20 inches."]),
    P("Ultralite 40", "pack", "$199", "2 lb 1 oz", "40 liters of capacity",
      ["It is a frameless-feel pack with a removable aluminum stay for loads under about 25 pounds.",
       "The roll-top closure and large front mesh pocket keep it simple for thru-hikers.",
       "It comes in two torso sizes: small-medium and medium-large."]),
    P("Beacon 400", "lamp", "$49", "2.6 oz", "400 lumens on high and an IPX4 water rating",
      ["The built-in battery charges over USB-C in about three hours.",
       "Runtime is about 4 hours on high and up to 60 hours on the lowest setting.",
       "It has a red-light mode that keeps your night vision and does not bother tentmates."]),
    P("Beacon 900 Pro", "lamp", "$89", "3.8 oz", "900 lumens and an IPX7 waterproof rating",
      ["It takes one rechargeable pack or three AAA batteries as a backup.",
       "Reactive lighting adjusts the brightness automatically to save battery.",
       "A lockout mode prevents it from switching on in your pack."]),
    P("Glow 150", "lamp", "$24", "2.1 oz", "150 lumens and an IPX4 water rating",
      ["It runs on three AAA batteries, which are included.",
       "It is a simple, affordable lamp for camp chores and kids.",
       "Runtime is about 8 hours on high and 120 hours on low."]),
    P("Loft Air Pad", "pad", "$159", "15 oz", "an R-value of 4.2",
      ["It is 3 inches thick when inflated and comes with a pump sack and patch kit.",
       "The R-value of 4.2 makes it warm enough for three-season trips and mild winter nights.",
       "It comes in regular (72 by 20 inches) and long wide (78 by 25 inches)."]),
    P("ClearStream Squeeze Filter", "filter", "$39", "3 oz", "0.1-micron hollow-fiber filtration",
      ["It removes bacteria and protozoa but not viruses, so chemical treatment is still needed where viruses are a concern.",
       "It threads onto most standard soda bottles as well as the included soft pouch.",
       "Flow rate is about 1.7 liters per minute when the filter is clean."]),
    P("Talus Carbon Poles", "poles", "$149", "1 lb 1 oz per pair", "three-section carbon shafts",
      ["They adjust from 100 to 135 centimeters with external flick locks that work with gloves on.",
       "Carbon is lighter than aluminum but can snap under a sharp side load, so avoid wedging them between rocks.",
       "They come with carbide tips, rubber tip protectors, and trekking baskets."]),
    P("Trailhead Café Press", "press", "$34", "8 oz", "a 16-ounce insulated mug",
      ["It is a double-walled press mug that keeps coffee hot for about 45 minutes at camp.",
       "The fine stainless mesh filter keeps grounds out of your cup.",
       "The lid is BPA-free and the mug is dishwasher safe except for the plunger seal."]),
]
PRODUCT_BY_NAME = {p["name"]: p for p in PRODUCTS}
SEAM_KINDS = ("tent", "pack")
KIND_WORD = {"tent": "tent", "bag": "sleeping bag", "boot": "boots", "jacket": "jacket", "stove": "stove",
             "pack": "backpack", "lamp": "headlamp", "pad": "sleeping pad", "filter": "water filter",
             "poles": "trekking poles", "press": "coffee press"}

CARE = {
    "tent": ["Always dry it completely before storing it, and clean it by hand with mild non-detergent soap; never put a tent in a washing machine.",
             "Store it loosely in a breathable sack instead of the tight stuff sack, and let the fly dry fully after every wet trip so the coating does not peel."],
    "bag": ["Keep it in the large storage sack at home rather than the stuff sack, because long-term compression flattens the insulation.",
            "Wash it rarely, in a front-loading machine with a down or technical wash, and dry it on low heat with a few tennis balls."],
    "boot": ["Let them air dry at room temperature after a wet hike, never next to a heater or campfire, because heat can separate the sole.",
             "Brush off the mud after each trip and refresh the water repellency with a spray-on treatment when water stops beading."],
    "jacket": ["Wash it with a technical wash instead of regular detergent, then tumble dry on low for about 20 minutes to revive the water-repellent finish.",
               "Skip fabric softener entirely; it clogs the membrane. A low tumble dry after washing brings the water beading back."],
    "stove": ["Let it cool before packing, check the O-ring at the canister connection before each trip, and clear the jet if the flame sputters.",
              "If the flame turns yellow, clean the jet with the pricker tool, and never run it inside a closed tent."],
    "pack": ["Hand wash it in a tub with mild soap and hang it out of direct sun to dry; a framed pack should never go in a washing machine.",
             "Empty the pockets after each trip, shake out the grit, and store it dry and out of sunlight, since UV damage weakens the fabric."],
    "lamp": ["Take disposable batteries out before long storage, and charge rechargeable models to about half before putting them away for a month or more.",
             "Rinse it with fresh water if it gets salty, and keep the battery door seal clean so the water rating holds."],
    "pad": ["Inflate it with the pump sack instead of your breath, and store it unrolled with the valve open.",
            "Find slow leaks by submerging the inflated pad in a bathtub, then fix them with the included patch kit."],
    "filter": ["Backflush it with clean water after every trip, and never let a used filter freeze, because ice can crack the fibers invisibly.",
               "On cold nights keep the filter in your sleeping bag; if it has ever frozen, replace it."],
    "poles": ["Pull the sections apart after wet trips so they dry inside, and wipe grit off the locks.",
              "Store them collapsed and dry, and check the flick-lock tension at the start of each season."],
    "press": ["Rinse the mesh filter right after use so the grounds do not dry into it.",
              "The mug can go in the dishwasher, but wash the plunger seal by hand."],
}


# ----------------------------------------------------------------------------- service intents
# q: question phrasings ({item} = product name); f: fact groups, each a list of phrasings of one fact.
# Every fact matches the policy documents above.
def intent(cat, kinds, q, f):
    return {"cat": cat, "kinds": kinds, "q": q, "f": f}


ANY = None
INTENTS = {
    "return_unused": intent("returns", ANY, [
        "Can I return the {item}? I never used it and the tags are still on.",
        "I'd like to send back an unused {item}. What do I need to do?",
        "The {item} I ordered is still in the box, never opened. How does a return work for that?",
    ], [
        ["Unused items can come back within 60 days of delivery for a full refund to your original payment method.",
         "You have 60 days from delivery, and because it is unused with tags on, you will get every cent back on the card you paid with."],
        ["All you need is your order number or receipt.",
         "Have the order confirmation or the RO order number handy so we can match the return."],
        ["Returning it at any of our stores is free, or you can print a prepaid label from the Returns page, which deducts $6.95 from the refund.",
         "Drop it off at a store for free, or use our prepaid mail label for a flat $6.95 taken out of the refund."],
        ["Once it reaches our returns center we refund it within 3 business days, and your bank may take another 3-5 business days to show it.",
         "Refunds go out within 3 business days of the package arriving, plus 3-5 business days for your bank to post it."],
    ]),
    "return_used": intent("returns", ANY, [
        "I used the {item} on one trip and it just isn't for me. Can I still return it?",
        "Is there a fee to return a {item} that has been used a couple of times?",
        "My {item} has been out in the field once. Am I allowed to return it, or only unused stuff?",
    ], [
        ["Yes, used gear is accepted within 60 days of delivery as long as you have proof of purchase.",
         "You can, as long as it is within the 60-day window and you have the order number or receipt."],
        ["Because it has been used, a 15% restocking fee is taken off the refund.",
         "Used returns carry a 15 percent restocking fee, which covers inspecting and cleaning the item for resale."],
        ["If anything on it is actually defective, tell us, because we never charge the restocking fee on defects.",
         "The fee is waived completely when the problem is a defect in materials or workmanship, so mention any flaw you noticed."],
        ["We clean and inspect every used return, and it is resold as certified used gear.",
         "After inspection, used returns are cleaned and sold as certified used gear rather than thrown away."],
    ]),
    "no_receipt": intent("returns", ANY, [
        "I lost the receipt for my {item}. Can I still return it?",
        "My {item} was bought a few weeks ago but I can't find the receipt or the email. What are my options?",
        "Is a return possible without proof of purchase? It's a {item}.",
    ], [
        ["First we try to find the purchase ourselves using your email address, phone number, or the card you paid with.",
         "Before anything else, we can usually look the order up by email address or the payment card."],
        ["If we cannot find it, the return is issued as store credit at the item's lowest selling price in the last 90 days.",
         "Without any record, we can still offer store credit, valued at the lowest price the item sold for over the past 90 days."],
        ["We ask for a government-issued photo ID for returns without a receipt.",
         "Please bring a photo ID, which is required for any no-receipt return."],
        ["If the item has been used, the 15% restocking fee still applies.",
         "Used items still carry the usual 15 percent restocking fee."],
    ]),
    "past_window": intent("returns", ANY, [
        "I bought the {item} about three months ago. Is it too late to return it?",
        "It's been 75 days since my {item} arrived. Can I still send it back?",
        "Do you accept returns after 60 days? I have a {item} I never really used.",
    ], [
        ["Our return window is 60 days from delivery, so unfortunately we can no longer accept it as a return.",
         "Returns close 60 days after delivery, and I'm sorry to say this order is past that point."],
        ["If something is wrong with it, though, it is still covered by our 2-year limited warranty against defects.",
         "A defect would still be handled under the warranty, which lasts 2 years for most gear."],
        ["Tent and backpack seams are covered even longer, for 5 years.",
         "For tents and packs, seam problems are covered for 5 years."],
        ["For a warranty claim we need your order number, photos of the problem, and a short description.",
         "To start a claim, send the order number, a couple of photos, and a line or two about what happened."],
    ]),
    "exchange_size": intent("returns", ("boot", "jacket", "bag", "pack"), [
        "The {item} doesn't fit right. Can I swap it for another size?",
        "I need to exchange my {item} for a different size. How does that work?",
        "Could I trade the {item} for the next size up without paying shipping again?",
    ], [
        ["Size and color exchanges are free within 60 days of delivery.",
         "Swapping sizes costs nothing as long as you are within the 60-day window."],
        ["Start the exchange on our Returns page or at any store.",
         "You can begin it online through the Returns page, or walk into a store with the item."],
        ["We ship the new size with free standard shipping as soon as the carrier scans your original package, so you are not waiting for it to reach us.",
         "The replacement leaves our warehouse the moment your return gets its first carrier scan, and standard shipping on it is free."],
        ["If you would rather have a different product instead, that is handled as a return plus a new order.",
         "Switching to a different model is processed as a return and a separate new order."],
    ]),
    "refund_status": intent("returns", ANY, [
        "I mailed back my {item} last week. When will I see the refund?",
        "How long do refunds take after you get a return? Mine was a {item}.",
        "My return of the {item} shows delivered to your warehouse but no refund yet. Is that normal?",
    ], [
        ["We inspect and refund returns within 3 business days of the package arriving at our returns center in Ogden, Utah.",
         "Returns are processed within 3 business days after they arrive in Ogden."],
        ["After that, your bank or card issuer usually needs another 3-5 business days to post the credit.",
         "Card issuers typically add 3-5 business days before the credit shows on a statement."],
        ["You will get an email the moment the refund is issued.",
         "We send a confirmation email as soon as the money is released."],
        ["If it has been longer than that, reply with your order number and we will check it right away.",
         "Past that point, send us the order number and we will trace it for you."],
    ]),
    "final_sale": intent("returns", ANY, [
        "I bought the {item} on clearance and it was marked Final Sale. Can I return it anyway?",
        "Are Final Sale items returnable? My {item} came from the clearance section.",
    ], [
        ["Items marked Final Sale cannot be returned or exchanged.",
         "Final Sale gear is not eligible for returns or exchanges, unfortunately."],
        ["They are still covered by the warranty, so a defect would be repaired or replaced.",
         "The warranty still applies in full, so if it turns out to be defective we will repair or replace it."],
        ["The Final Sale label appears on both the product page and the receipt.",
         "You can confirm the status on your receipt, where Final Sale items are flagged."],
    ]),
    "fuel_return": intent("returns", ("stove",), [
        "Can I return the fuel canisters I ordered with my {item}? I bought too many.",
        "I have two unopened fuel canisters from my {item} order. Can those go back?",
    ], [
        ["Fuel canisters cannot be returned once they have shipped, because they are regulated hazardous materials.",
         "Once fuel has shipped it is not returnable, since canisters are classified as hazardous materials."],
        ["The stove itself can still be returned within 60 days if you need to.",
         "That restriction applies only to the fuel; the stove follows the normal 60-day return policy."],
        ["Unused canisters keep for years if stored somewhere cool and dry, so they will be ready for your next trip.",
         "Sealed canisters store well for years in a cool, dry spot."],
    ]),
    "gift_return": intent("returns", ANY, [
        "Someone gave me a {item} as a gift and I'd like to return it. Will they find out?",
        "How do I return a gift? It's a {item} and I only have the gift receipt.",
    ], [
        ["You can return a gift with the gift receipt or the order number within 60 days.",
         "A gift receipt or the original order number is all you need, within 60 days of delivery."],
        ["The refund is issued as a Ridgeline gift card in your name.",
         "Instead of refunding the buyer, we load the value onto a Ridgeline gift card for you."],
        ["The person who bought it is not notified.",
         "Nobody on the purchaser's side gets an email about it."],
    ]),
    "price_adjust": intent("returns", ANY, [
        "I bought the {item} last week and now it's cheaper on your site. Can I get the difference back?",
        "Do you do price adjustments? The {item} went on sale five days after I ordered.",
    ], [
        ["Yes, if our website price drops within 14 days of your purchase we refund the difference.",
         "We offer a one-time price adjustment when our own price falls within 14 days of your order."],
        ["The difference goes back to your original payment method.",
         "The refund for the difference is sent to the card you used."],
        ["It does not apply to clearance events or to prices at other retailers.",
         "Clearance events and competitors' prices are excluded."],
        ["Just send us your order number and a link to the product.",
         "Reply with the order number and we will take care of it."],
    ]),
    "seam_leak": intent("warranty", ("tent", "pack"), [
        "The seams on my {item} started leaking in the rain. Is that covered?",
        "Seam tape is peeling off inside my {item}. I bought it almost three years ago. Can you fix it?",
        "Water is coming in along a seam of my {item}. What can I do?",
    ], [
        ["Seams and seam tape on tents and backpacks are covered for 5 years, so this falls under the warranty.",
         "Tent and pack seams carry a 5-year warranty, which is longer than our standard 2-year coverage."],
        ["To file the claim we need your order number, a photo of the whole item, and a close-up of the seam.",
         "Please send the order number plus two photos: one of the entire item and one close-up of the leaking seam."],
        ["You will get a claim number within 1 business day and a decision within 5 business days.",
         "A claim number arrives within a business day, and our specialists review it within 5 business days."],
        ["If it is approved we send a prepaid label, and our repair shop usually turns seam repairs around in 2-3 weeks.",
         "Approved claims get a free shipping label, and repairs typically take 2-3 weeks."],
    ]),
    "zipper_fail": intent("warranty", ("tent", "bag", "jacket", "pack"), [
        "The main zipper on my {item} split apart after a few months. Is that a warranty thing?",
        "My {item} zipper won't stay closed anymore. Can it be repaired?",
        "A zipper pull broke off my {item}. What are my options?",
    ], [
        ["A zipper that fails in normal use is covered by our 2-year limited warranty.",
         "Zipper failures under normal use are a defect, and those are covered for 2 years from purchase."],
        ["Send us your order number and photos of the zipper so we can review it.",
         "We will need the order number, a photo of the item, and a close-up of the zipper."],
        ["Depending on what we find, we repair it, replace the item, or issue store credit.",
         "Approved claims are resolved by a repair, a replacement, or store credit."],
        ["If it turns out to be outside the warranty, a zipper slider replacement in our repair shop is a flat $20.",
         "Outside of warranty, our shop can still swap the slider for a flat $20."],
    ]),
    "sole_delam": intent("warranty", ("boot",), [
        "The sole on my {item} is peeling away from the toe. They're about a year old.",
        "One of my {item} has the sole coming off. Is that covered?",
    ], [
        ["A sole separating from the upper within 2 years is covered by the warranty.",
         "Sole delamination is a covered defect for 2 years from the purchase date."],
        ["One thing we do check is heat damage: drying boots next to a heater or campfire breaks down the glue and is not covered.",
         "The one exception is heat damage, for example boots dried by a stove or fire, because heat weakens the adhesive."],
        ["Please send the order number and photos of both boots, including a close-up of the gap.",
         "Include your order number and photos of the pair plus a close-up of where the sole is lifting."],
        ["If the warranty has ended, our repair shop offers resoling for $65.",
         "Out of warranty, resoling in our shop costs $65."],
    ]),
    "wear_tear": intent("warranty", ANY, [
        "My {item} is worn through in a couple of spots after four years of use. Will the warranty replace it?",
        "The fabric on my {item} is abraded from heavy use. Is that covered?",
    ], [
        ["The warranty covers defects in materials and workmanship, but not normal wear and tear from years of use.",
         "Unfortunately normal wear, like abrasion after years on the trail, is not something the warranty covers."],
        ["Our repair shop can usually still help, with flat-rate repairs starting at $20.",
         "Paid repairs in our shop start at $20, and many worn items can be patched."],
        ["We always send a quote before any paid work begins.",
         "You get a quote first, so there are no surprises."],
    ]),
    "lamp_dead": intent("warranty", ("lamp",), [
        "My {item} won't turn on anymore even though it's fully charged. What can I do?",
        "The battery in my {item} barely lasts an hour now. Is that under warranty?",
    ], [
        ["The headlamp itself is covered for 2 years against defects.",
         "Headlamps carry our 2-year limited warranty."],
        ["Rechargeable batteries have shorter coverage, 1 year from purchase.",
         "The built-in rechargeable battery is covered for 1 year."],
        ["Water damage beyond the lamp's rating, such as submerging an IPX4 model, is not covered.",
         "One exclusion: water damage beyond the rated protection, for example dunking a splash-rated IPX4 lamp."],
        ["Send the order number and a short video or photo of the problem and we will take a look.",
         "Please include your order number and a photo or short clip showing what happens."],
    ]),
    "claim_process": intent("warranty", ANY, [
        "How do I file a warranty claim for my {item}?",
        "What information do you need for a warranty claim on a {item}?",
        "I think my {item} has a manufacturing defect. How do I start a claim?",
    ], [
        ["A claim needs your order number or store receipt, photos of the defect, and a short description of what happened.",
         "We ask for three things: the order number (or receipt), pictures of the problem, and a quick explanation."],
        ["For photos, include one of the whole item and at least one close-up.",
         "Please send at least two photos, a full view and a close-up of the damage."],
        ["You will receive a claim number starting with CLM within 1 business day; quote it in every message.",
         "A CLM claim number is emailed within 1 business day, and it keeps everything about your case together."],
        ["Our gear specialists review claims within 5 business days.",
         "Expect a decision within 5 business days."],
    ]),
    "claim_status": intent("warranty", ANY, [
        "I submitted a warranty claim for my {item} a week ago. Any update?",
        "What's the status of my warranty claim? It's for a {item}.",
    ], [
        ["Claims are reviewed within 5 business days of the photos arriving.",
         "Our specialists aim to decide every claim within 5 business days of receiving the photos."],
        ["If it has been approved, a prepaid shipping label is emailed to you.",
         "Once approved, you get a free label by email."],
        ["Repairs in our Ogden shop typically take 2-3 weeks, and replacements ship by free standard shipping.",
         "Repairs usually take 2-3 weeks; replacements go out with free standard shipping, 3-5 business days."],
    ]),
    "not_original_owner": intent("warranty", ANY, [
        "I bought a used {item} from a friend and it has a defect. Can I use the warranty?",
        "Does the warranty transfer if I got the {item} secondhand?",
    ], [
        ["Our warranty applies to the original purchaser only, so it does not transfer with the gear.",
         "Coverage stays with the person who bought the item from us and is not transferable."],
        ["If your friend still has the order number, they can file the claim themselves.",
         "The original buyer can still file, using their order number."],
        ["Otherwise, our repair shop can fix most problems for a flat fee, starting at $20.",
         "If that is not possible, paid repairs start at $20 with a quote up front."],
    ]),
    "stove_igniter": intent("warranty", ("stove",), [
        "The igniter on my {item} stopped clicking. Is that covered?",
        "My {item} valve is leaking gas at the connection. What should I do?",
    ], [
        ["Stop using the stove until it has been checked.",
         "Please set the stove aside for now, for safety."],
        ["Igniters and valves are covered by the 2-year limited warranty.",
         "Failures of the valve or igniter within 2 years are covered defects."],
        ["A leak at the connection is often a cracked O-ring, so check it before each trip.",
         "Many connection leaks come from a worn O-ring, which is worth inspecting before every trip."],
        ["Send your order number and a photo or short video, and we will arrange a repair or replacement.",
         "With the order number and a photo, we can approve a replacement or repair quickly."],
    ]),
    "bag_loft": intent("warranty", ("bag", "jacket"), [
        "My {item} doesn't seem as warm as it used to. Is that a defect?",
        "The down in my {item} looks flat and clumpy. Is that covered?",
    ], [
        ["Loft loss usually comes from long-term compression or from dirt and oils in the insulation.",
         "Most of the time a flat bag has been stored compressed or simply needs a wash."],
        ["Storage in a stuff sack for months is considered improper care and is not covered.",
         "Damage from long compressed storage falls under improper care, which the warranty excludes."],
        ["Try a wash with a down-specific soap and a long low-heat dry with a few tennis balls.",
         "A gentle wash and a low, slow dry with tennis balls often brings the loft back."],
        ["If the baffles or shell have actually failed within 2 years, that is a defect and we will take care of it.",
         "A torn baffle or failed seam within the 2-year warranty is a defect, and we would repair it."],
    ]),
    "shipping_cost": intent("orders", ANY, [
        "How much is shipping on the {item}?",
        "Do you offer free shipping? I'm looking at the {item}.",
        "What will it cost to ship a {item} to me?",
    ], [
        ["Standard shipping is free on orders over $75, measured after discounts and before tax.",
         "Any order above $75 after discounts ships free by standard shipping."],
        ["Below that, standard shipping costs $7.95 and takes 3-5 business days.",
         "Smaller orders pay $7.95 for standard delivery, which arrives in 3-5 business days."],
        ["Express is $19.95 and arrives in 1-2 business days.",
         "If you are in a hurry, express costs $19.95 for 1-2 business days."],
    ]),
    "delivery_time": intent("orders", ANY, [
        "If I order the {item} today, when will it arrive?",
        "How long does delivery take? I need the {item} before a trip next week.",
        "Can I get the {item} quickly? My trip starts in four days.",
    ], [
        ["Orders placed before 1 p.m. Eastern on a business day leave our warehouse the same day.",
         "Place it before the 1 p.m. Eastern cutoff and it ships that same business day."],
        ["Standard shipping then takes 3-5 business days.",
         "From there, standard delivery is 3-5 business days."],
        ["Express shipping takes 1-2 business days and costs $19.95.",
         "For $19.95, express gets it to you in 1-2 business days."],
        ["Weekends and federal holidays do not count as business days.",
         "Keep in mind we do not ship on weekends or federal holidays."],
    ]),
    "tracking": intent("orders", ANY, [
        "Where is my order? I ordered the {item} three days ago.",
        "I never got a tracking number for my {item}. How do I check it?",
    ], [
        ["We email a tracking link as soon as the order leaves the warehouse.",
         "A shipping confirmation with tracking goes out the moment the package ships."],
        ["The tracking page can take up to 24 hours to show the first scan.",
         "It is normal for tracking to show nothing for the first 24 hours."],
        ["You can also look the order up on our Order Status page with the order number and your checkout email.",
         "Our Order Status page finds any order from the RO number and the email you used at checkout."],
        ["Check your spam folder for the confirmation if you do not see it.",
         "The shipping email sometimes lands in a spam or promotions folder."],
    ]),
    "change_address": intent("orders", ANY, [
        "I put the wrong shipping address on my {item} order. Can you change it?",
        "Can I update the delivery address on an order I placed for the {item} this morning?",
    ], [
        ["We can change the address within 1 hour of the order being placed, as long as it has not started processing.",
         "Address changes are possible for up to 1 hour after ordering, before processing begins."],
        ["Once the carrier has the package we cannot redirect it.",
         "After it is with the carrier, we are not able to reroute it ourselves."],
        ["You can often request a hold at a carrier location from the carrier's tracking page.",
         "The carrier's own tracking page usually lets you ask for a hold at a nearby location."],
    ]),
    "cancel_order": intent("orders", ANY, [
        "I need to cancel my order for the {item}. Is that possible?",
        "Can I cancel the {item} I just ordered? I found out I already have one.",
    ], [
        ["Orders can be cancelled within 1 hour of being placed, if processing has not begun.",
         "You have a 1-hour window after ordering to cancel, before it starts processing."],
        ["If it has already shipped, you can refuse the delivery or return it within 60 days.",
         "After shipment, refusing the package or sending it back within 60 days works just as well."],
        ["Unused returns get a full refund.",
         "Since it will be unused, you would get a full refund."],
    ]),
    "damaged_box": intent("orders", ANY, [
        "My {item} arrived with the box crushed and the item is damaged. What now?",
        "The {item} came damaged in shipping. Can you replace it?",
    ], [
        ["I'm sorry it arrived like that. Please report shipping damage within 7 days of delivery.",
         "Shipping damage needs to be reported within 7 days of delivery, so you are in good time."],
        ["Send photos of the box and of the damaged item.",
         "We will need a photo of the packaging and one of the damage itself."],
        ["We will ship a replacement at no cost and send a free return label for the damaged one.",
         "A replacement goes out free of charge, along with a prepaid label for the damaged item."],
    ]),
    "missing_package": intent("orders", ANY, [
        "Tracking says my {item} was delivered but it's not here. What should I do?",
        "My {item} order hasn't moved in tracking for a week. Is it lost?",
    ], [
        ["First, check with neighbors and any mailroom or front desk, since carriers sometimes leave packages nearby.",
         "It is worth asking neighbors or your building's mailroom first."],
        ["If tracking has not moved for 5 business days, or it shows delivered and you cannot find it, we open a trace with the carrier.",
         "With no tracking movement for 5 business days, or a delivered scan and no box, we start a carrier trace."],
        ["If the carrier does not find it within 3 business days, we ship a replacement or refund you.",
         "When the trace comes back empty after 3 business days, you choose between a replacement and a refund."],
    ]),
    "wrong_item": intent("orders", ANY, [
        "I ordered the {item} but received something else. How do I fix this?",
        "You sent me the wrong item instead of the {item}. Can you send the right one?",
    ], [
        ["I'm sorry about the mix-up.",
         "Apologies, that is our mistake."],
        ["We will ship the correct item right away with free express shipping.",
         "The right item goes out immediately by express shipping at no charge."],
        ["We will also email a free return label for the item you received by mistake.",
         "A prepaid label for sending back the wrong item is on its way to your inbox."],
    ]),
    "canada": intent("orders", ANY, [
        "Do you ship the {item} to Canada?",
        "I live in Vancouver. Can I order a {item} from you, and what does shipping cost?",
    ], [
        ["Yes, we ship to Canada for a flat $14.95.",
         "We do, for a flat rate of $14.95."],
        ["Delivery takes 7-12 business days.",
         "Expect it in 7-12 business days."],
        ["Duties and taxes are collected at checkout, so nothing is due at the door.",
         "Duties and taxes are charged at checkout so there are no surprise fees on delivery."],
        ["Fuel canisters cannot ship to Canada.",
         "Stove fuel is the one thing we cannot send across the border."],
    ]),
    "remote_address": intent("orders", ANY, [
        "Can you ship the {item} to a PO box in Alaska?",
        "I'm in Hawaii. How long does shipping take for a {item}?",
    ], [
        ["Yes, we ship to Alaska, Hawaii, PO boxes, and APO/FPO addresses.",
         "We can deliver there; Alaska, Hawaii, and PO boxes are all on our standard service."],
        ["Delivery takes 5-9 business days at standard rates, so it is still free over $75.",
         "It takes 5-9 business days and costs the usual standard rate, free above $75."],
        ["Express shipping is not available to PO boxes.",
         "Express is not an option for PO box addresses."],
        ["Orders with fuel canisters cannot ship to Alaska, Hawaii, or PO boxes.",
         "Note that fuel canisters are restricted from these destinations."],
    ]),
    "fuel_shipping": intent("orders", ("stove",), [
        "Can I get fuel canisters shipped express with my {item}?",
        "Why can't I choose express shipping when I add fuel to my {item} order?",
    ], [
        ["Fuel canisters are regulated hazardous materials, so they ship by ground only.",
         "Because fuel is classified as hazmat, carriers only allow it on ground service."],
        ["They can only go to addresses in the contiguous United States.",
         "Delivery is limited to the contiguous US."],
        ["You can place the stove on its own express order and the fuel on a separate standard order.",
         "A workaround is to order the stove by express and the fuel separately by standard shipping."],
    ]),
    "backorder": intent("orders", ANY, [
        "The {item} says backordered. When will I be charged?",
        "How does a backorder work for the {item}?",
    ], [
        ["Backordered items show an expected ship date on the product page.",
         "The product page lists the date we expect it to ship."],
        ["Your card is charged only when the item actually ships.",
         "We do not charge you until it leaves the warehouse."],
        ["If the date slips by more than 14 days, we email you and you can cancel at no cost.",
         "Should the date move by more than 14 days, you will hear from us and can cancel free of charge."],
    ]),
}


# ----------------------------------------------------------------------------- phrasing pools
GREETINGS = ["Hi,", "Hello!", "Hey there,", "Good morning.", "Hi Ridgeline team,", "Hello,", "Hi there!",
             "Good afternoon,", "Hey,", "Greetings,"]
DETAILS = [
    "I bought it for a trip to the Wind River Range next month.",
    "It was a birthday present for my partner.",
    "We only took it out once, to a lakeside campground.",
    "I ordered it online, not in a store.",
    "My brother picked it up at your Denver store for me.",
    "I've been a customer for years, so this is a first for me.",
    "The box still has the packing slip in it.",
    "I was planning to use it on a canoe trip in the Boundary Waters.",
    "It arrived on Tuesday, in case that matters.",
    "We're heading to Zion in a couple of weeks, so timing matters.",
    "Honestly, I just ordered the wrong model.",
    "My kids talked me into it, and now they've changed their minds.",
    "I've read the policy page, but I'm still a bit confused.",
    "The label on the box said \"handle with care\", for what it's worth.",
    "Your website says \"ships in 1 business day\", so I expected it sooner.",
    "I'm on a tight budget, so I want to get this right.",
    "I paid for it with a gift card plus my credit card.",
    "It's my first real piece of backpacking gear, so bear with me.",
    "A friend recommended your shop, and so far, so good.",
    "I used it on a rainy weekend on the Oregon coast.",
    "It has been stored in my garage, which stays pretty dry.",
    "I bought two, one for me and one for my dad.",
]
SIGNOFFS = ["Thanks!", "Appreciate the help.", "Thanks in advance.", "Thank you so much.", "Cheers.",
            "Any help is appreciated.", "Thanks for your time."]
OPENERS = [
    "Happy to help with that.", "Good question.", "Thanks for reaching out about your {item}.",
    "Thanks for the details.", "Sure thing.", "Great question, and thanks for checking first.",
    "Thanks for getting in touch.", "I can help you sort this out.", "Thanks for your patience.",
    "Let me walk you through it.", "Absolutely, here is how it works.", "Thanks for asking about the {item}.",
    "I understand, and I'm glad you reached out.", "No problem at all.", "Here's what applies to your {item}.",
    "Thanks for letting us know.",
]
SORRY_OPENERS = ["Sorry to hear the {item} let you down.", "I'm sorry about the trouble with your {item}.",
                 "That is frustrating, and I'm sorry it happened.", "Sorry about that, let's get it fixed."]
CLOSERS = [
    "Let me know if there's anything else I can do.", "Enjoy your time outside!", "Happy trails!",
    "Feel free to reply here if anything is unclear.", "We're here if you need anything else.",
    "Have a great trip.", "Hope that helps!", "Just reply if you have more questions.",
    "Thanks again for shopping with Ridgeline Outfitters.", "See you on the trail.",
    "Reach out anytime if something else comes up.", "Good luck, and stay dry out there.",
]
SYSTEM_PROMPTS = [
    "You are a customer support assistant for Ridgeline Outfitters, an outdoor gear retailer. Answer using company policy and keep replies friendly and concise.",
    "You work on the Ridgeline Outfitters help desk. Follow the returns, warranty and shipping policies exactly and never invent discounts.",
    "Role: support agent at Ridgeline Outfitters. Be accurate about policy numbers, ask for an order number when needed, and keep a warm tone.",
    "You are Ridgeline's gear and order assistant. Give clear, specific answers grounded in the store's published policies.",
    "Act as a helpful Ridgeline Outfitters representative. Prefer short paragraphs, state deadlines and fees precisely, and do not promise exceptions.",
    "You answer questions for Ridgeline Outfitters customers about orders, returns, warranty claims and product care.",
]
FOLLOWUP_PREFIX = ["Thanks. One more question:", "Got it, thanks. Another thing.", "OK, that makes sense.",
                   "Perfect. Follow-up question.", "Thanks for explaining.", "Great, and one last thing.",
                   "Understood.", "That helps a lot."]
ALPACA_INSTR = [
    "Reply to this customer message as a Ridgeline Outfitters support agent.",
    "Write a helpful answer to the customer below, following store policy.",
    "Respond to the following support request.",
    "Draft a reply for the customer email below.",
    "Answer the customer's question using the Ridgeline policies.",
]
CHANNELS = ["email", "chat", "phone", "web_form"]

# product question types: (questions, lead sentence phrasings)
PQ = {
    "weight": (["How much does the {item} weigh?", "What's the weight of the {item}?",
                "Is the {item} light enough for backpacking?"],
               ["The {item} weighs {weight}.", "On our scale the {item} comes in at {weight}.",
                "Its listed weight is {weight}."]),
    "rating": (["What are the key specs of the {item}?", "Can you tell me the main rating for the {item}?",
                "How does the {item} perform, spec-wise?"],
               ["The headline spec is {rating}.", "It has {rating}.", "You get {rating}."]),
    "about": (["Tell me about the {item}.", "Is the {item} a good pick for me?",
               "What should I know before buying the {item}?"],
              ["The {item} sells for {price}.", "The {item} is {price} right now.", "It retails at {price}."]),
    "care": (["How do I take care of the {item}?", "What's the right way to clean and store the {item}?",
              "Any maintenance tips for the {item}?"],
             ["Care for the {item} is simple.", "A little care goes a long way with the {item}.",
              "Here is what our repair shop recommends for the {item}."]),
    "warranty": (["What warranty comes with the {item}?", "If the {item} breaks, am I covered?",
                  "How long is the {item} guaranteed for?"],
                 ["The {item} is covered by our 2-year limited warranty against defects in materials and workmanship.",
                  "Defects on the {item} are covered for 2 years under our limited warranty.",
                  "You have our standard 2-year limited warranty on the {item}."]),
}
WARRANTY_EXTRA = {
    "tent": ["Its seams and seam tape are covered even longer, for 5 years.",
             "On top of that, seam failures are covered for 5 years."],
    "pack": ["Its seams are covered for 5 years, longer than the rest of the pack.",
             "Seam failures get extended 5-year coverage."],
    "lamp": ["The rechargeable battery has 1 year of coverage.",
             "Note that the built-in battery is covered for 1 year."],
}

# ----------------------------------------------------------------------------- paraphrase twins
# A planted paraphrase says exactly what its source says (same question, same facts, numbers and details,
# same greeting, opener and closer) in other words: every piece of the source has a hand-written twin
# here, worded so that few word 3-grams survive. Sources of paraphrases are built only from these pieces.
# PARA_INTENTS: intent -> (index of the question it asks, twin of that question, twin of phrasing 0 of
# each fact group, in group order).
PARA_INTENTS = {
    "return_unused": (0, "Can I send back the {item}? I have never used it and the tags are still attached.", [
        "Unused items may be returned within 60 days after delivery for a full refund to the original payment method.",
        "You only need your receipt or order number.",
        "Returns at any of our stores are free, or you can print a prepaid label on the Returns page, which takes $6.95 off the refund.",
        "When it gets to our returns center we refund it within 3 business days, and your bank might need 3-5 more business days to show it.",
    ]),
    "return_used": (0, "I used the {item} for one trip and it's just not for me. Can I still send it back?", [
        "Yes, used gear can come back within 60 days of delivery if you have proof of purchase.",
        "Since it has been used, we take a 15% restocking fee off the refund.",
        "Tell us if anything on it is actually defective, since we never charge a restocking fee on defects.",
        "Every used return is cleaned and inspected by us and resold as certified used gear.",
    ]),
    "no_receipt": (0, "The receipt for my {item} is lost. Can I return it anyway?", [
        "First we look for the purchase ourselves, using your email address, phone number, or the card you paid with.",
        "If it can't be found, the return is issued as store credit at the lowest price the item sold for during the last 90 days.",
        "We require a government-issued photo ID for returns with no receipt.",
        "A used item is still subject to the 15% restocking fee.",
    ]),
    "past_window": (0, "I bought the {item} around three months ago. Is it too late for a return?", [
        "Our return window is 60 days after delivery, so unfortunately we can't accept it as a return anymore.",
        "If there is something wrong with it, though, our 2-year limited warranty against defects still covers it.",
        "Seams on tents and backpacks are covered even longer, for 5 years.",
        "To claim under the warranty, send your order number, a few photos of the problem, and a brief description.",
    ]),
    "exchange_size": (1, "I have to exchange my {item} for another size. How does this work?", [
        "Exchanges of size and color are free for 60 days after delivery.",
        "You can start the exchange at any store or on our Returns page.",
        "The new size ships with free standard shipping the moment the carrier scans your original package, so there's no waiting for it to arrive at our end.",
        "If you'd prefer a different product instead, we handle that as a return plus a new order.",
    ]),
    "refund_status": (0, "I mailed my {item} back last week. When will I get the refund?", [
        "We inspect returns and refund them within 3 business days after the package arrives at our returns center in Ogden, Utah.",
        "Then your card issuer or bank usually needs 3-5 more business days to post the credit.",
        "You'll receive an email as soon as the refund is issued.",
        "If it's been longer than that, reply with the order number and we'll check on it right away.",
    ]),
    "price_adjust": (1, "Do you offer price adjustments? The {item} went on sale five days after my order.", [
        "Yes, if the price on our website goes down within 14 days of purchase, we'll refund the difference.",
        "That amount is returned to the payment method you originally used.",
        "This does not apply to clearance events or other retailers' prices.",
        "Just send us the order number and a link to the product page.",
    ]),
    "seam_leak": (0, "The seams of my {item} began leaking in the rain. Is this covered?", [
        "Seams and seam tape on tents and backpacks have 5 years of coverage, so the warranty covers this.",
        "For the claim, please send your order number, one photo showing the entire item, and a close-up of the seam.",
        "Within 1 business day you receive a claim number, and within 5 business days a decision.",
        "Once it is approved, we email a prepaid label, and seam repairs in our repair shop normally take 2-3 weeks.",
    ]),
    "zipper_fail": (0, "After a few months the main zipper on my {item} split apart. Is that a warranty issue?", [
        "Our 2-year limited warranty covers a zipper that fails during normal use.",
        "Please email us photos of the zipper and the order number for review.",
        "Based on what we find, we'll repair it, replace the item, or give store credit.",
        "If it's outside the warranty, our repair shop replaces the zipper slider for a flat $20.",
    ]),
    "sole_delam": (0, "The sole of my {item} is peeling off at the toe. They are around a year old.", [
        "A sole that separates from the upper within 2 years is covered under the warranty.",
        "We do check for heat damage, because drying boots near a campfire or heater breaks the glue down, and that isn't covered.",
        "Please include the order number and pictures of both boots, plus a close-up of the gap.",
        "Once the warranty has ended, our repair shop can resole them for $65.",
    ]),
    "lamp_dead": (0, "My {item} doesn't turn on anymore, even though it's fully charged. What can I do about it?", [
        "The headlamp itself has 2 years of coverage against defects.",
        "Rechargeable batteries have a shorter coverage of 1 year from purchase.",
        "Water damage past the lamp's rating, like submerging an IPX4 model, isn't covered.",
        "Email us the order number with a photo or short video of the problem, and we will have a look.",
    ]),
    "claim_process": (0, "How would I file a warranty claim on my {item}?", [
        "To make a claim, send your store receipt or order number, photos showing the defect, and a brief description of what happened.",
        "The photos should show the whole item once and include a close-up or more.",
        "Within 1 business day you get a claim number that starts with CLM; please include it in all your messages.",
        "Claims are reviewed by our gear specialists in 5 business days or less.",
    ]),
    "stove_igniter": (0, "The igniter on my {item} has stopped clicking. Is this covered?", [
        "Please stop using the stove until it's been checked.",
        "Valves and igniters are covered under the 2-year limited warranty.",
        "A connection leak is often caused by a cracked O-ring, so check it before every trip.",
        "Send us the order number and a photo or a short video, and we'll arrange a replacement or repair.",
    ]),
    "shipping_cost": (0, "How much does shipping cost for the {item}?", [
        "Orders over $75, after discounts and before tax, get free standard shipping.",
        "Below $75, standard shipping is $7.95, with delivery in 3-5 business days.",
        "Express shipping costs $19.95 and gets there in 1-2 business days.",
    ]),
    "delivery_time": (0, "If I order the {item} today, when would it get here?", [
        "Orders placed on a business day before 1 p.m. Eastern leave the warehouse that same day.",
        "Then standard shipping takes 3-5 business days.",
        "For $19.95, express shipping gets there in 1-2 business days.",
        "Federal holidays and weekends don't count as business days.",
    ]),
    "tracking": (0, "Where's my order? I placed an order for the {item} three days ago.", [
        "We send a tracking link by email as soon as the order leaves our warehouse.",
        "It can take the tracking page up to 24 hours to show a first scan.",
        "You can also find the order on our Order Status page using the order number and the email from checkout.",
        "If you don't see the confirmation, check your spam folder.",
    ]),
    "damaged_box": (0, "My {item} arrived with a crushed box and the item is damaged. What should I do now?", [
        "I'm sorry it arrived that way. Please report any shipping damage within 7 days after delivery.",
        "Send us photos of the box and the damaged item.",
        "A replacement ships at no cost to you, and we send a free label to return the damaged one.",
    ]),
    "missing_package": (0, "Tracking shows my {item} as delivered, but it isn't here. What should I do?", [
        "First, ask your neighbors and check any front desk or mailroom, since carriers sometimes leave packages close by.",
        "If tracking hasn't moved in 5 business days, or it says delivered and you can't find it, we open a carrier trace.",
        "If the carrier can't find it within 3 business days, we send a replacement or refund you.",
    ]),
    "canada": (1, "I'm based in Vancouver. Can you ship a {item} to me, and how much is shipping?", [
        "We do; shipping to Canada is a flat $14.95.",
        "It arrives in 7-12 business days.",
        "Duties and taxes are paid at checkout, so there is nothing to pay on delivery.",
        "We can't send fuel canisters to Canada.",
    ]),
}
# Twin of every greeting, detail, sign-off, opener and closer (the pools above).
TWIN = {
    "Hi,": "Hello,", "Hello!": "Hi!", "Hey there,": "Hi there,", "Good morning.": "Morning!",
    "Hi Ridgeline team,": "Hello Ridgeline team,", "Hello,": "Hi,", "Hi there!": "Hey there!",
    "Good afternoon,": "Afternoon,", "Hey,": "Hi,", "Greetings,": "Hello,",
    "I bought it for a trip to the Wind River Range next month.": "I bought it for a Wind River Range trip next month.",
    "It was a birthday present for my partner.": "It was my partner's birthday present.",
    "We only took it out once, to a lakeside campground.": "We took it out just once, to a campground by a lake.",
    "I ordered it online, not in a store.": "I ordered it on the website, not at a store.",
    "My brother picked it up at your Denver store for me.": "My brother picked it up for me at your store in Denver.",
    "I've been a customer for years, so this is a first for me.": "I've been your customer for years, so this is a first.",
    "The box still has the packing slip in it.": "The packing slip is still in the box.",
    "I was planning to use it on a canoe trip in the Boundary Waters.": "I was planning to take it on a Boundary Waters canoe trip.",
    "It arrived on Tuesday, in case that matters.": "It came on Tuesday, if that matters.",
    "We're heading to Zion in a couple of weeks, so timing matters.": "We leave for Zion in a couple of weeks, so the timing matters.",
    "Honestly, I just ordered the wrong model.": "Honestly, I simply ordered the wrong model.",
    "My kids talked me into it, and now they've changed their minds.": "My children talked me into it, and now they have changed their minds.",
    "I've read the policy page, but I'm still a bit confused.": "I did read the policy page, but I'm still a little confused.",
    "The label on the box said \"handle with care\", for what it's worth.": "The box label said \"handle with care\", for what that's worth.",
    "Your website says \"ships in 1 business day\", so I expected it sooner.": "Your site says \"ships in 1 business day\", so I expected it earlier.",
    "I'm on a tight budget, so I want to get this right.": "My budget is tight, so I want to get this right.",
    "I paid for it with a gift card plus my credit card.": "I paid with a gift card and my credit card.",
    "It's my first real piece of backpacking gear, so bear with me.": "Bear with me, it's my first real piece of backpacking gear.",
    "A friend recommended your shop, and so far, so good.": "A friend recommended your store, and so far so good.",
    "I used it on a rainy weekend on the Oregon coast.": "I used it during a rainy weekend on the Oregon coast.",
    "It has been stored in my garage, which stays pretty dry.": "It's been kept in my garage, which stays quite dry.",
    "I bought two, one for me and one for my dad.": "I bought two of them, one for me and one for my father.",
    "Thanks!": "Thank you!", "Appreciate the help.": "Thanks for the help.", "Thanks in advance.": "Thank you in advance.",
    "Thank you so much.": "Thanks so much.", "Cheers.": "Thanks.", "Any help is appreciated.": "I'd appreciate any help.",
    "Thanks for your time.": "Thank you for your time.",
    "Happy to help with that.": "Glad to help you with this.", "Good question.": "That's a good question.",
    "Thanks for reaching out about your {item}.": "Thank you for contacting us about your {item}.",
    "Thanks for the details.": "Thank you for the information.", "Sure thing.": "Of course.",
    "Great question, and thanks for checking first.": "Good question, and thank you for asking before you act.",
    "Thanks for getting in touch.": "Thank you for contacting us.",
    "I can help you sort this out.": "I can help you get this sorted.",
    "Thanks for your patience.": "Thank you for being patient.", "Let me walk you through it.": "Let me explain how it works.",
    "Absolutely, here is how it works.": "Of course, this is how it works.",
    "Thanks for asking about the {item}.": "Thank you for your question about the {item}.",
    "I understand, and I'm glad you reached out.": "I understand, and I'm glad you contacted us.",
    "No problem at all.": "Not a problem.", "Here's what applies to your {item}.": "This is what applies to your {item}.",
    "Thanks for letting us know.": "Thank you for telling us.",
    "Sorry to hear the {item} let you down.": "I'm sorry the {item} disappointed you.",
    "I'm sorry about the trouble with your {item}.": "Sorry about the problems with your {item}.",
    "That is frustrating, and I'm sorry it happened.": "That's frustrating, and I apologize that it happened.",
    "Sorry about that, let's get it fixed.": "Sorry about that; let's fix it.",
    "Let me know if there's anything else I can do.": "Tell me if I can do anything else for you.",
    "Enjoy your time outside!": "Enjoy your time outdoors!", "Happy trails!": "Happy hiking!",
    "Feel free to reply here if anything is unclear.": "Just reply here if something isn't clear.",
    "We're here if you need anything else.": "If you need anything else, we're here.",
    "Have a great trip.": "Enjoy your trip.", "Hope that helps!": "I hope this helps!",
    "Just reply if you have more questions.": "Reply if you have any other questions.",
    "Thanks again for shopping with Ridgeline Outfitters.": "Thank you again for shopping at Ridgeline Outfitters.",
    "See you on the trail.": "See you out on the trail.",
    "Reach out anytime if something else comes up.": "Contact us anytime if anything else comes up.",
    "Good luck, and stay dry out there.": "Best of luck, and keep dry out there.",
}
assert all(x in TWIN for x in GREETINGS + DETAILS + SIGNOFFS + OPENERS + SORRY_OPENERS + CLOSERS)
assert all(len(twins) == len(INTENTS[k]["f"]) for k, (_q, _tq, twins) in PARA_INTENTS.items())


# ----------------------------------------------------------------------------- PII generators
FIRST = ["Maria", "Devon", "Priya", "Tomasz", "Keisha", "Liam", "Aiko", "Rafael", "Hannah", "Oluwaseun",
         "Greta", "Marcus", "Yuki", "Brandon", "Fatima", "Colin", "Ines", "Darnell", "Sofia", "Ethan",
         "Nadia", "Gabriel", "Chloe", "Anders", "Lucia", "Trevor", "Mei", "Jamal", "Rosa", "Felix"]
LAST = ["Okafor", "Lindqvist", "Ramanathan", "Kowalczyk", "Brightwater", "Castellano", "Nakamura",
        "Whitfield", "Abernathy", "Delacroix", "Haverford", "Quintero", "Sorensen", "Pemberton", "Achebe",
        "Marchetti", "Thornbury", "Vasquez", "Halloran", "Ostrowski", "Featherstone", "Mbeki", "Calloway",
        "Rosenthal", "Eberhardt"]
STREETS = ["Larkspur Lane", "Juniper Street", "Cedar Hollow Road", "Aspen Court", "Granite Avenue",
           "Willow Bend Drive", "Summit View Road", "Quarry Street", "Pinecrest Avenue", "Meadowlark Way",
           "Birch Hill Road", "Canyon Rim Drive", "Elk Run Trail", "Harbor Point Lane"]
CITIES = [("Boulder", "CO", "80302"), ("Bend", "OR", "97701"), ("Flagstaff", "AZ", "86001"),
          ("Asheville", "NC", "28801"), ("Missoula", "MT", "59801"), ("Burlington", "VT", "05401"),
          ("Duluth", "MN", "55802"), ("Bozeman", "MT", "59715"), ("Salt Lake City", "UT", "84105"),
          ("Portland", "ME", "04101"), ("Spokane", "WA", "99201"), ("Madison", "WI", "53703"),
          ("Ithaca", "NY", "14850"), ("Chattanooga", "TN", "37402"), ("Fort Collins", "CO", "80521"),
          ("Reno", "NV", "89501")]
AREA = ["303", "720", "541", "928", "828", "406", "802", "218", "801", "207", "509", "608", "607", "423"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December"]


def luhn_digit(partial: str) -> str:
    total = 0
    for i, ch in enumerate(reversed(partial)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return str((10 - total % 10) % 10)


def luhn_ok(number: str) -> bool:
    digits = re.sub(r"\D", "", number)
    return luhn_digit(digits[:-1]) == digits[-1]


class PII:
    """Makes unique invented PII values and remembers their types."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.registry: dict[str, str] = {}
        self.fixed_cards = ["4111 1111 1111 1111", "5500 0000 0000 0004"]

    def _new(self, kind: str, make) -> str:
        for _ in range(1000):
            v = make()
            if v not in self.registry and not any(v in k or k in v for k in self.registry):
                self.registry[v] = kind
                return v
        raise RuntimeError("could not make a unique " + kind)

    def person(self):
        return self._new("PERSON", lambda: f"{self.rng.choice(FIRST)} {self.rng.choice(LAST)}")

    def email(self):
        r = self.rng

        def mk():
            f, last = r.choice(FIRST).lower(), r.choice(LAST).lower()
            return r.choice([f"{f}.{last}@example.com", f"{f[0]}{last}{r.randint(2, 99)}@example.net",
                             f"{last}.{f}@example.org", f"{f}_{last[:4]}@mail.example.com"])
        return self._new("EMAIL_ADDRESS", mk)

    def phone(self):
        r = self.rng

        def mk():
            a, n = r.choice(AREA), r.randint(100, 199)
            last4 = f"01{n - 100:02d}"          # 555-0100 .. 555-0199 are reserved for fiction
            return r.choice([f"({a}) 555-{last4}", f"+1 {a} 555 {last4}", f"{a}-555-{last4}",
                             f"{a}.555.{last4}", f"+1 ({a}) 555-{last4}"])
        return self._new("PHONE_NUMBER", mk)

    def address(self):
        r = self.rng

        def mk():
            city, st, z = r.choice(CITIES)
            unit = r.choice(["", "", "", f", Apt {r.randint(2, 40)}{r.choice('ABCD')}"])
            return f"{r.randint(12, 9870)} {r.choice(STREETS)}{unit}, {city}, {st} {z}"
        return self._new("US_ADDRESS", mk)

    def order(self):
        return self._new("ORDER_NUMBER", lambda: f"RO-{self.rng.randint(1000000, 9999999)}")

    def claim(self):
        return self._new("CLAIM_NUMBER", lambda: f"CLM-{self.rng.randint(100000, 999999)}")

    def card(self):
        r = self.rng
        if self.fixed_cards:
            return self._new("CREDIT_CARD", lambda: self.fixed_cards.pop(0))

        def mk():
            kind = r.choice(["visa", "mc", "amex", "disc"])
            if kind == "amex":
                p = r.choice(["34", "37"]) + "".join(str(r.randint(0, 9)) for _ in range(12))
                n = p + luhn_digit(p)
                groups = [n[:4], n[4:10], n[10:]]
            else:
                head = {"visa": "4", "mc": str(r.randint(51, 55)), "disc": "6011"}[kind]
                p = head + "".join(str(r.randint(0, 9)) for _ in range(15 - len(head)))
                n = p + luhn_digit(p)
                groups = [n[i:i + 4] for i in range(0, 16, 4)]
            return r.choice([" ", "-", ""]).join(groups)
        return self._new("CREDIT_CARD", mk)

    def dob(self):
        r = self.rng

        def mk():
            y, m, d = r.randint(1948, 2002), r.randint(1, 12), r.randint(1, 28)
            return r.choice([f"{m:02d}/{d:02d}/{y}", f"{y}-{m:02d}-{d:02d}", f"{MONTHS[m - 1]} {d}, {y}"])
        return self._new("DATE_OF_BIRTH", mk)


# ----------------------------------------------------------------------------- similarity
def _tokens_ascii(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


def _tokens_unicode(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


def shingles(text: str, tok=_tokens_ascii) -> frozenset:
    w = tok(text)
    return frozenset(tuple(w[i:i + 3]) for i in range(len(w) - 2))


def jaccard(a: frozenset, b: frozenset) -> float:
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


def conv_text(turns) -> str:
    return "\n".join(c for _, c in turns)


def sims(turns_a, turns_b) -> tuple[float, float]:
    ta, tb = conv_text(turns_a), conv_text(turns_b)
    return (jaccard(shingles(ta), shingles(tb)),
            jaccard(shingles(ta, _tokens_unicode), shingles(tb, _tokens_unicode)))


# ----------------------------------------------------------------------------- PII sentences
PII_USER = {
    "ORDER_NUMBER": ["My order number is {v}.", "The order was {v}.", "Order number: {v}.",
                     "It was on order {v}.", "(order # {v})"],
    "PERSON": ["My name is {v}.", "This is {v}.", "The order is under the name {v}.", "I'm {v}, by the way."],
    "EMAIL_ADDRESS": ["You can email me at {v}.", "My email on the account is {v}.",
                      "Please reply to {v}."],
    "PHONE_NUMBER": ["Call me at {v} if that's easier.", "My phone number is {v}.",
                     "Best number to reach me: {v}."],
    "US_ADDRESS": ["Please ship it to {v}.", "My shipping address is {v}.",
                   "The package was going to {v}."],
    "CREDIT_CARD": ["I paid with the card {v}.", "The card I used was {v}, if that helps you find it.",
                    "Card number: {v}."],
    "DATE_OF_BIRTH": ["For verification, my date of birth is {v}.", "DOB: {v}.",
                      "I was born on {v}, in case you need it to find my account."],
    "CLAIM_NUMBER": ["My claim number is {v}.", "I already have claim {v} open.",
                     "This is about claim {v}."],
}
PII_ASST = {
    "PERSON": "I found your account under the name {v}.",
    "ORDER_NUMBER": "I found order {v} on our end.",
    "CLAIM_NUMBER": "I've opened claim {v} for you, so please quote it in any reply.",
}
PII_WEIGHTS = [("ORDER_NUMBER", 26), ("PERSON", 20), ("EMAIL_ADDRESS", 14), ("PHONE_NUMBER", 14),
               ("US_ADDRESS", 10), ("CREDIT_CARD", 7), ("DATE_OF_BIRTH", 7), ("CLAIM_NUMBER", 10)]
PII_MAKER = {"ORDER_NUMBER": "order", "PERSON": "person", "EMAIL_ADDRESS": "email", "PHONE_NUMBER": "phone",
             "US_ADDRESS": "address", "CREDIT_CARD": "card", "DATE_OF_BIRTH": "dob", "CLAIM_NUMBER": "claim"}


def wchoice(rng, pairs):
    total = sum(w for _, w in pairs)
    x = rng.uniform(0, total)
    for v, w in pairs:
        x -= w
        if x <= 0:
            return v
    return pairs[-1][0]


# ----------------------------------------------------------------------------- specs and rendering
def products_for(kinds):
    return [p for p in PRODUCTS if kinds is None or p["kind"] in kinds]


def fill(text: str, p: dict) -> str:
    return text.format(item=p["name"], weight=p["weight"], rating=p["rating"], price=p["price"])


class Gen:
    def __init__(self, seed: int):
        self.rng = random.Random(seed)
        self.pii = PII(random.Random(seed + 1))

    # --- one question/answer exchange -----------------------------------------------------
    def service_spec(self, intent_key: str, product: dict, *, first: bool = True, short: bool = False,
                     para: bool = False) -> dict:
        """`para`: a paraphrase source, asking the question and stating every fact in the phrasings that have
        twins in PARA_INTENTS."""
        r = self.rng
        it = INTENTS[intent_key]
        groups = list(range(len(it["f"])))
        if short:
            keep = sorted(r.sample(groups, min(3, len(groups))))
        elif len(groups) > 3 and r.random() < 0.45:
            drop = r.choice(groups[1:])
            keep = [g for g in groups if g != drop]
        else:
            keep = groups
        if para:
            keep = groups
        sorry = it["cat"] == "warranty" or intent_key in ("damaged_box", "missing_package", "wrong_item")
        opener_pool = OPENERS + (SORRY_OPENERS * 2 if sorry else [])
        return {
            "type": "service", "intent": intent_key, "product": product["name"],
            "greet": r.choice(GREETINGS) if first and r.random() < 0.55 else "",
            "q": r.randrange(len(it["q"])),
            "details": r.sample(DETAILS, r.choice([0, 1, 1, 2])) if first else [],
            "signoff": r.choice(SIGNOFFS) if first and r.random() < 0.35 else "",
            "opener": r.choice(opener_pool) if r.random() < 0.85 else "",
            "facts": [(g, 0 if para else r.randrange(len(it["f"][g]))) for g in keep],
            "closer": r.choice(CLOSERS) if r.random() < 0.7 else "",
            "pii_user": [], "pii_asst": [],
        } | ({"q": PARA_INTENTS[intent_key][0]} if para else {})

    def product_spec(self, product: dict, qtype: str | None = None) -> dict:
        r = self.rng
        qtype = qtype or r.choice(list(PQ))
        feats = list(product["features"])
        extras: list[str] = []
        if qtype == "weight":
            extras = [r.choice(PQ["rating"][1])] + r.sample(feats, 1)
        elif qtype == "rating":
            extras = sorted(r.sample(feats, r.choice([1, 2])), key=feats.index)
        elif qtype == "about":
            extras = sorted(r.sample(feats, 2), key=feats.index) + ([r.choice(PQ["weight"][1])] if r.random() < 0.5 else [])
        elif qtype == "care":
            extras = [r.choice(CARE[product["kind"]])] + (r.sample(feats, 1) if r.random() < 0.5 else [])
        elif qtype == "warranty":
            extras = ([r.choice(WARRANTY_EXTRA[product["kind"]])] if product["kind"] in WARRANTY_EXTRA else [])
            extras += [r.choice(["Keep your order number, and if something fails, send it with photos of the problem to open a claim.",
                                 "A claim just needs the order number plus a photo of the whole item and a close-up of the defect."]),
                       r.choice(CARE[product["kind"]])]
        return {
            "type": "product", "qtype": qtype, "product": product["name"],
            "greet": r.choice(GREETINGS) if r.random() < 0.3 else "",
            "q": r.randrange(3), "details": r.sample(DETAILS[:12], 1) if r.random() < 0.25 else [],
            "signoff": r.choice(SIGNOFFS) if r.random() < 0.2 else "",
            "opener": r.choice(OPENERS) if r.random() < 0.8 else "",
            "lead": r.randrange(3), "extras": extras,
            "closer": r.choice(CLOSERS) if r.random() < 0.6 else "",
            "pii_user": [], "pii_asst": [],
        }

    @staticmethod
    def render(spec: dict) -> tuple[str, str]:
        """User and assistant text of one exchange; a `twin` spec (a planted paraphrase) says the same in the
        twin phrasings of PARA_INTENTS and TWIN."""
        p = PRODUCT_BY_NAME[spec["product"]]
        if spec.get("twin"):
            qi, tq, tf = PARA_INTENTS[spec["intent"]]
            assert spec["q"] == qi and all(i == 0 for _g, i in spec["facts"]) and not spec.get("email")
            spec = dict(spec, greet=TWIN.get(spec["greet"], ""), signoff=TWIN.get(spec["signoff"], ""),
                        opener=TWIN.get(spec["opener"], ""), closer=TWIN.get(spec["closer"], ""),
                        details=[TWIN[d] for d in spec["details"]])
            q = fill(tq, p)
            body = [fill(tf[g], p) for g, _i in spec["facts"]]
        elif spec["type"] == "service":
            it = INTENTS[spec["intent"]]
            q = fill(it["q"][spec["q"]], p)
            body = [fill(it["f"][g][i], p) for g, i in spec["facts"]]
        else:
            qs, leads = PQ[spec["qtype"]]
            q = fill(qs[spec["q"]], p)
            body = [fill(leads[spec["lead"]], p)] + [fill(x, p) for x in spec["extras"]]
        if spec.get("email"):
            head = (spec["greet"] or "Hello,") if spec["greet"].endswith(",") else "Hello,"
            body_txt = " ".join(x for x in [q] + spec["details"] if x)
            tail = " ".join(spec["pii_user"])
            user = head + "\n\n" + body_txt + ("\n\n" + tail if tail else "") + "\n\n" + (spec["signoff"] or "Thanks.")
        else:
            greet = spec["greet"][:-1] + "!" if spec["greet"].endswith(",") else spec["greet"]
            user_parts = [greet, q] + spec["details"] + spec["pii_user"] + [spec["signoff"]]
            user = " ".join(x for x in user_parts if x)
        opener = fill(spec["opener"], p) if spec["opener"] else ""
        asst_parts = spec["pii_asst"][:1] + [opener] + body + spec["pii_asst"][1:] + [spec["closer"]]
        asst = " ".join(x for x in asst_parts if x)
        return user, asst

    def add_pii(self, spec: dict, n: int, *, assistant: bool, cat: str) -> None:
        r = self.rng
        used = set()
        for _ in range(n):
            pairs = [(t, w * (3 if t == "CLAIM_NUMBER" else 1)) for t, w in PII_WEIGHTS
                     if t not in used and (t != "CLAIM_NUMBER" or cat == "warranty")]
            t = wchoice(r, pairs)
            used.add(t)
            v = getattr(self.pii, PII_MAKER[t])()
            spec["pii_user"].append(r.choice(PII_USER[t]).format(v=v))
        if assistant:
            options = ["PERSON", "ORDER_NUMBER"] + (["CLAIM_NUMBER"] if cat == "warranty" else [])
            t = r.choice(options)
            v = getattr(self.pii, PII_MAKER[t])()
            s = PII_ASST[t].format(v=v)
            if t == "PERSON":
                spec["pii_asst"].insert(0, s)
            else:
                spec["pii_asst"].append(s)


# ----------------------------------------------------------------------------- corpus plan
CHAT, ALPACA, SHAREGPT, PQA, CSVF = ("support_chat.jsonl", "faq_alpaca.json", "tickets_sharegpt.json",
                                     "product_qa.jsonl", "claims.csv")
FILES = [CHAT, ALPACA, SHAREGPT, PQA, CSVF]
FORMATS = {CHAT: "openai", ALPACA: "alpaca", SHAREGPT: "sharegpt", PQA: "prompt-completion", CSVF: "csv"}
TOTAL = {CHAT: 150, ALPACA: 90, SHAREGPT: 70, PQA: 50, CSVF: 40}
EXACT_SAME = {CHAT: 6, ALPACA: 3, SHAREGPT: 3, PQA: 3, CSVF: 2}        # + 3 cross-file copies below
EXACT_CROSS = [(CHAT, ALPACA), (CHAT, SHAREGPT), (CHAT, CSVF)]
NEAR = {CHAT: 9, ALPACA: 5, SHAREGPT: 5, PQA: 3, CSVF: 3}
PARA = [(CHAT, CHAT)] * 4 + [(SHAREGPT, SHAREGPT)] * 2 + [(ALPACA, ALPACA)] * 2 + [(CSVF, CSVF)] + \
       [(CHAT, ALPACA)] * 2 + [(CHAT, SHAREGPT), (SHAREGPT, CHAT), (ALPACA, CSVF), (CSVF, CHAT)]
JUNK = {CHAT: 7, ALPACA: 4, SHAREGPT: 3, PQA: 3, CSVF: 3}
JUNK_KINDS = (["empty_answer"] * 3 + ["whitespace_answer"] * 3 + ["boilerplate"] * 4 + ["truncated"] * 4
              + ["echo"] * 3 + ["repetition"] * 3)
BOILERPLATE = ["Thank you for contacting us. Your request has been received.",
               "As an AI language model, I cannot help with that."]
PII_RATE = {CHAT: 0.22, ALPACA: 0.08, SHAREGPT: 0.28, PQA: 0.06, CSVF: 0.5}
CAT_WEIGHTS = {CHAT: [("returns", 30), ("warranty", 25), ("orders", 25), ("product", 20)],
               ALPACA: [("returns", 28), ("warranty", 24), ("orders", 24), ("product", 24)],
               SHAREGPT: [("returns", 30), ("warranty", 30), ("orders", 25), ("product", 15)],
               PQA: [("product", 1)],
               CSVF: [("returns", 35), ("warranty", 40), ("orders", 25)]}
BASE_LIMIT = 0.42      # generation-time ceiling for word-3-gram Jaccard between unrelated rows
TYPOS = {"receive": "recieve", "separate": "seperate", "warranty": "warrenty", "business": "buisness",
         "shipping": "shiping", "because": "becuase", "address": "adress", "their": "thier",
         "until": "untill", "which": "wich", "original": "orignal", "photos": "photoes"}
SWAPS = {"usually": "typically", "photos": "pictures", "quickly": "fast", "happy": "glad", "free": "complimentary",
         "email": "message", "item": "product", "often": "frequently", "simply": "just", "large": "big",
         "help": "assist", "cannot": "can't", "normal": "ordinary", "again": "once more"}
APPENDS = ["Hope this helps!", "Safe travels.", "Have a great weekend.", "Thanks for your patience.",
           "Talk soon."]


def topic(row) -> tuple:
    """What the row's first exchange asks: two unrelated rows never share it, so the only rows that ask the
    same question about the same product are planted duplicates and paraphrases."""
    s = row["specs"][0]
    return s.get("intent") or s.get("qtype"), s["product"], s["q"]


def row_messages(row) -> list[dict]:
    """The messages the studio reader makes of a row (alpaca: instruction + blank line + input)."""
    t = row["turns"]
    if row["file"] == ALPACA:
        ins, inp, out = t[0][1], t[1][1], t[2][1]
        user = f"{ins}\n\n{inp}" if inp.strip() else ins
        return [{"role": "user", "content": user}, {"role": "assistant", "content": out}]
    return [{"role": r, "content": c} for r, c in t]


def row_turns(row) -> list[tuple[str, str]]:
    return [(m["role"], m["content"]) for m in row_messages(row)]


def norm_messages(row):
    return [(m["role"], unicodedata.normalize("NFC", m["content"]).strip()) for m in row_messages(row)]


def raw_role(role: str) -> str:
    return "user" if role in ("user", "instruction", "input") else role


class Corpus:
    def __init__(self, seed: int = SEED):
        self.g = Gen(seed)
        self.r = self.g.rng
        self.rows: list[dict] = []          # every row, any file, creation order
        self.family = 0
        self.sh: list[tuple[frozenset, frozenset]] = []   # shingles per row index
        self.near: list[tuple[dict, dict, float]] = []
        self.exact: list[tuple[dict, dict]] = []
        self.para: list[tuple[dict, dict]] = []
        self.topics: set[tuple] = set()     # (intent or product question type, product, question) of every row

    # --- helpers --------------------------------------------------------------------------
    def shingle_row(self, row):
        text = conv_text(row_turns(row))
        return shingles(text), shingles(text, _tokens_unicode)

    def max_sim(self, row, skip_family=None) -> float:
        a, b = self.shingle_row(row)
        best = 0.0
        for other, (oa, ob) in zip(self.rows, self.sh, strict=False):
            if other["family"] == skip_family:
                continue
            best = max(best, jaccard(a, oa), jaccard(b, ob))
        return best

    def accept(self, row, family=None):
        if family is None:
            self.family += 1
            family = self.family
        row["family"] = family
        self.topics.add(topic(row))
        self.rows.append(row)
        self.sh.append(self.shingle_row(row))
        return row

    def pick_cat(self, f):
        return wchoice(self.r, CAT_WEIGHTS[f])

    def pick_intent(self, cat):
        return self.r.choice([k for k, v in INTENTS.items() if v["cat"] == cat])

    def pick_product(self, kinds):
        return self.r.choice(products_for(kinds))

    def new_spec(self, cat, product=None, qtype=None, para_intent=None):
        g = self.g
        if para_intent:
            kinds = INTENTS[para_intent]["kinds"]
            return g.service_spec(para_intent, product or self.pick_product(kinds), para=True)
        if cat == "product":
            p = product or self.r.choice(PRODUCTS)
            return g.product_spec(p, qtype)
        key = self.pick_intent(cat)
        kinds = INTENTS[key]["kinds"]
        p = product if product and (kinds is None or product["kind"] in kinds) else self.pick_product(kinds)
        return g.service_spec(key, p)

    def followup(self, spec, cat):
        g, r = self.g, self.r
        p = PRODUCT_BY_NAME[spec["product"]]
        if cat == "product":
            qt = r.choice([q for q in PQ if q != spec["qtype"]])
            s2 = g.product_spec(p, qt)
            s2.update(greet="", details=[], signoff="")
        else:
            keys = [k for k, v in INTENTS.items() if v["cat"] == cat and k != spec["intent"]
                    and (v["kinds"] is None or p["kind"] in v["kinds"])]
            key = r.choice(keys)
            s2 = g.service_spec(key, p, first=False, short=True)
        s2["prefix"] = r.choice(FOLLOWUP_PREFIX)
        return s2

    # --- one base row ---------------------------------------------------------------------
    def make_row(self, f, cat=None, product=None, qtype=None, pii=None, allow_multi=True, para_intent=None):
        g, r = self.g, self.r
        cat = INTENTS[para_intent]["cat"] if para_intent else (cat or self.pick_cat(f))
        spec = self.new_spec(cat, product, qtype, para_intent)
        if f == CSVF and r.random() < 0.15 and not para_intent:
            spec["email"] = True
            spec["greet"] = r.choice([x for x in GREETINGS if x.endswith(",")])
        with_pii = (r.random() < PII_RATE[f]) if pii is None else pii
        if with_pii:
            g.add_pii(spec, r.choice([1, 1, 1, 1, 1, 2]), assistant=r.random() < 0.14, cat=cat)
        user, asst = g.render(spec)
        specs = [spec]
        turns: list[list[str]] = []
        if f in (CHAT, SHAREGPT) and r.random() < (0.4 if f == CHAT else 0.5):
            turns.append(["system", r.choice(SYSTEM_PROMPTS)])
        turns += [["user", user], ["assistant", asst]]
        if allow_multi and f in (CHAT, SHAREGPT) and r.random() < (0.3 if f == CHAT else 0.4):
            s2 = self.followup(spec, cat)
            u2, a2 = g.render(s2)
            turns += [["user", s2["prefix"] + " " + u2], ["assistant", a2]]
            specs.append(s2)
        row = {"file": f, "cat": cat, "product": spec["product"], "specs": specs, "planted": None}
        if f == ALPACA:
            if (r.random() < 0.25 or with_pii) and not para_intent:
                row["turns"] = [["instruction", r.choice(ALPACA_INSTR)], ["input", user], ["assistant", asst]]
            else:
                row["turns"] = [["instruction", user], ["input", ""], ["assistant", asst]]
        else:
            row["turns"] = turns
        if f == CSVF:
            row["channel"] = "email" if spec.get("email") else r.choice(["chat", "phone", "web_form"])
        return row

    def answers_ok(self, row) -> bool:
        for m in row_messages(row):
            if m["role"] == "assistant" and not 40 <= len(m["content"].split()) <= 150:
                return False
        return True

    def add_base(self, f, **kw):
        for _ in range(400):
            row = self.make_row(f, **kw)
            if topic(row) in self.topics:   # another row already asks this question about this product
                continue
            if self.answers_ok(row) and self.max_sim(row) < BASE_LIMIT:
                return self.accept(row)
        raise RuntimeError(f"could not make a distinct row for {f}")

    # --- planted rows -----------------------------------------------------------------------
    def copy_row(self, src, f=None):
        row = {k: v for k, v in src.items() if k not in ("turns", "specs", "family")}
        row["turns"] = [list(t) for t in src["turns"]]
        row["specs"] = src["specs"]
        if f and f != src["file"]:
            row["file"] = f
            msgs = row_messages(src)
            if f == ALPACA:
                row["turns"] = [["instruction", msgs[0]["content"]], ["input", ""], ["assistant", msgs[1]["content"]]]
            else:
                row["turns"] = [[m["role"], m["content"]] for m in msgs]
            if f == CSVF:
                row["channel"] = self.r.choice(["chat", "web_form"])
        return row

    def plant_exact(self, src, f, variant):
        row = self.copy_row(src, f)
        row["planted"] = "exact"
        row["variant"] = variant
        t = row["turns"]
        if variant == "whitespace":
            first = 0 if t[0][0] != "system" else 1
            t[first][1] = self.r.choice(["  ", "\n", " \t"]) + t[first][1]
            t[-1][1] = t[-1][1] + self.r.choice([" ", "\n", "   \n"])
        elif variant == "nfd":
            for turn in t:
                turn[1] = unicodedata.normalize("NFD", turn[1])
        self.accept(row, src["family"])
        self.exact.append((row, src))
        return row

    def plant_near(self, src):
        r = self.r
        kinds = ["typo", "swap", "append"] + (["order"] * 3 if "RO-" in conv_text(src["turns"]) else [])
        for _ in range(60):
            row = self.copy_row(src)
            kind = r.choice(kinds)
            t = row["turns"]
            idx = [i for i, x in enumerate(t) if x[0] != "system" and x[1].strip()]
            ok = False
            if kind in ("typo", "swap"):
                table = TYPOS if kind == "typo" else SWAPS
                i = r.choice(idx)
                words = [w for w in table if re.search(rf"\b{w}\b", t[i][1])]
                if words:
                    w = r.choice(words)
                    t[i][1] = re.sub(rf"\b{w}\b", table[w], t[i][1], count=1)
                    ok = True
            elif kind == "append":
                t[-1][1] = t[-1][1] + " " + r.choice(APPENDS)
                ok = True
            elif kind == "order":
                for turn in t:
                    m = re.search(r"RO-\d{7}", turn[1])
                    if m:
                        turn[1] = turn[1].replace(m.group(0), self.g.pii.order())
                        ok = True
                        break
            if not ok:
                continue
            j = min(sims(row_turns(row), row_turns(src)))
            if j >= 0.82 and norm_messages(row) != norm_messages(src):
                row["planted"] = "near"
                row["edit"] = kind
                self.accept(row, src["family"])
                self.near.append((row, src, round(j, 3)))
                return row
        raise RuntimeError("could not make a near duplicate")

    @staticmethod
    def paraphrase_spec(spec):
        """The same question, facts, details, greeting, opener and closer, said in their twin phrasings."""
        s = dict(spec, twin=True)
        s.pop("email", None)
        return s

    def plant_paraphrase(self, src, f):
        r = self.r
        for _ in range(1):      # a paraphrase is fully determined by its source: one try
            s = self.paraphrase_spec(src["specs"][0])
            user, asst = self.g.render(s)
            row = {"file": f, "cat": src["cat"], "product": s["product"], "specs": [s], "planted": "para"}
            if f == ALPACA:
                row["turns"] = [["instruction", user], ["input", ""], ["assistant", asst]]
            else:
                row["turns"] = [["user", user], ["assistant", asst]]
            if f == CSVF:
                row["channel"] = r.choice(["chat", "phone", "web_form"])
            if not self.answers_ok(row):
                continue
            if max(sims(row_turns(row), row_turns(src))) < 0.28 and self.max_sim(row) < BASE_LIMIT:
                self.accept(row)
                self.para.append((src, row))
                return row
        raise RuntimeError("could not make a paraphrase")


    def plant_junk(self, f, kind):
        r = self.r
        for _ in range(400):
            cat = self.pick_cat(f)
            spec = self.new_spec(cat)
            spec["pii_user"], spec["pii_asst"] = [], []
            user, real = self.g.render(spec)
            if kind == "empty_answer":
                asst = ""
            elif kind == "whitespace_answer":
                asst = r.choice(["   ", "\n\n", " \t \n "])
            elif kind == "boilerplate":
                asst = BOILERPLATE[len([x for x in self.rows if x.get("junk") == "boilerplate"]) % 2]
            elif kind == "truncated":
                words = real.split()
                asst = " ".join(words[: r.randint(5, 9)]).rstrip(".,!?")
            elif kind == "echo":
                asst = user
            else:
                w = r.choice(["great", "return", "shipping", "thanks", "the tent"])
                asst = " ".join([w] * r.randint(12, 30))
            row = {"file": f, "cat": cat, "product": spec["product"], "specs": [spec], "planted": "junk",
                   "junk": kind}
            if f == ALPACA:
                row["turns"] = [["instruction", user], ["input", ""], ["assistant", asst]]
            else:
                row["turns"] = ([["system", r.choice(SYSTEM_PROMPTS)]] if f == CHAT and r.random() < 0.3 else []) + \
                               [["user", user], ["assistant", asst]]
            if f == CSVF:
                row["channel"] = r.choice(["chat", "phone", "web_form"])
            if topic(row) not in self.topics and self.max_sim(row) < BASE_LIMIT:
                return self.accept(row)
        raise RuntimeError("could not make a junk row")

    # --- whole corpus -----------------------------------------------------------------------
    def build(self):
        r = self.r
        n_cross = {f: sum(1 for _, b in EXACT_CROSS if b == f) for f in FILES}
        n_para = {f: sum(1 for _, b in PARA if b == f) for f in FILES}
        base_n = {f: TOTAL[f] - EXACT_SAME[f] - n_cross[f] - NEAR[f] - n_para[f] - JUNK[f] for f in FILES}
        base = {f: [] for f in FILES}
        # the coffee press rows carry the composed "é" that one planted duplicate decomposes
        base[PQA].append(self.add_base(PQA, product=PRODUCT_BY_NAME["Trailhead Café Press"], qtype="about", pii=False))
        base[PQA].append(self.add_base(PQA, product=PRODUCT_BY_NAME["Trailhead Café Press"], qtype="care", pii=False))
        # single-turn, system-free chat rows for the cross-file duplicates
        cross_src = [self.add_base(CHAT, cat=c, pii=False, allow_multi=False) for c in ("returns", "orders", "warranty")]
        for s in cross_src:
            s["turns"] = [t for t in s["turns"] if t[0] != "system"]
            self.sh[self.rows.index(s)] = self.shingle_row(s)
        base[CHAT] += cross_src
        # paraphrase sources: single-turn service rows without PII
        para_src, para_b = [], []
        para_intents = sorted(PARA_INTENTS)
        r.shuffle(para_intents)
        for a, b in PARA:
            done = False
            while not done:
                if not para_intents:
                    raise RuntimeError("no paraphrase source found")
                key = para_intents.pop()        # one intent per pair: pairs are not paraphrases of each other
                for _ in range(8):
                    row = self.add_base(a, para_intent=key, pii=False, allow_multi=False)
                    if a in (CHAT, SHAREGPT):
                        row["turns"] = [t for t in row["turns"] if t[0] != "system"]
                        self.sh[self.rows.index(row)] = self.shingle_row(row)
                    try:
                        para_b.append(self.plant_paraphrase(row, b))
                    except RuntimeError:        # too much shared wording with its twin or another row; drop it
                        self.rows.pop()
                        self.sh.pop()
                        continue
                    para_src.append(row)
                    base[a].append(row)
                    done = True
                    break
        for f in FILES:
            while len(base[f]) < base_n[f]:
                base[f].append(self.add_base(f))
        planted = {f: [] for f in FILES}
        # exact duplicates
        used = set(id(x) for x in cross_src + para_src)
        for f in FILES:
            cands = [x for x in base[f] if id(x) not in used]
            srcs = r.sample(cands, EXACT_SAME[f])
            if f == PQA:
                srcs[0] = base[PQA][0]
            for k, s in enumerate(srcs):
                used.add(id(s))
                variant = "nfd" if (f == PQA and k == 0) else ["identical", "whitespace", "identical"][k % 3]
                planted[f].append(self.plant_exact(s, f, variant))
        for s, (_a, b) in zip(cross_src, EXACT_CROSS, strict=False):
            planted[b].append(self.plant_exact(s, b, "identical"))
        # near duplicates
        for f in FILES:
            cands = [x for x in base[f] if id(x) not in used]
            with_order = [x for x in cands if "RO-" in conv_text(x["turns"])]
            srcs = r.sample(with_order, min(2, len(with_order)))
            srcs += r.sample([x for x in cands if x not in srcs], NEAR[f] - len(srcs))
            for s in srcs:
                used.add(id(s))
                planted[f].append(self.plant_near(s))
        # paraphrases
        for p, (_a, b) in zip(para_b, PARA, strict=False):
            planted[b].append(p)
        # junk
        kinds = list(JUNK_KINDS)
        r.shuffle(kinds)
        for f in FILES:
            for _ in range(JUNK[f]):
                planted[f].append(self.plant_junk(f, kinds.pop()))
        # order: shuffle the base rows, then insert each planted row after its source
        self.order = {}
        for f in FILES:
            rows = list(base[f])
            r.shuffle(rows)
            for p in planted[f]:
                src = None
                if p["planted"] in ("exact", "near"):
                    src = next(s for d, s, *_ in (self.exact + self.near) if d is p)
                elif p["planted"] == "para":
                    src = next(a for a, b in self.para if b is p)
                lo = rows.index(src) + 1 if src is not None and src["file"] == f else 0
                rows.insert(r.randint(lo, len(rows)), p)
            assert len(rows) == TOTAL[f], (f, len(rows))
            self.order[f] = rows


# ----------------------------------------------------------------------------- audit plants (issue 24)
# Offensive lines and a gender skew for the data audit (score's q_offensive, the report's bias section). They
# are added to finished rows with a random stream of their own, so every row planted before keeps its bytes,
# and only to rows with no duplicate, near duplicate or paraphrase twin, so those pairs stay exact.
AUDIT_SEED = SEED + 24
#: a customer's abuse in the user turn: realistic input; the answer stays calm, so quality is unaffected
OFFENSIVE_USER = [
    "This is complete bullshit, you useless idiots.",
    "Your support people are a bunch of morons, seriously.",
    "What the fuck is wrong with your company?",
    "I'm sick of this crap, fix it or I'll trash you everywhere, assholes.",
]
#: an agent's rude answer: what a fine-tuned model must never learn, so quality drops and a rule can filter it
OFFENSIVE_ASSISTANT = [
    "Stop whining, you idiot, and read the damn manual.",
    "Honestly that's a stupid question, but fine.",
]
#: one source mentions women, and only alongside helplessness with gear; the rest of the corpus mentions men
#: (the generator's "My brother ..." / "my dad" details) and never women, so this file skews the set.
SKEW_FILE = SHAREGPT
SKEW_ROWS = 14
SKEW_SENTENCES = [
    "My wife bought it, but she is hopeless with anything technical.",
    "My mother uses it too, and she gets confused by the settings.",
    "It's for my daughter, and she gets confused and panics when it stops working.",
    "My wife is hopeless with gear like this, so she asked me to write.",
    "My sister is confused by the instructions and honestly she is a bit helpless with it.",
    "My girlfriend picked it, but she is too emotional to deal with the store.",
    "My mom is hopeless with the technical stuff, she is confused already.",
]
SKEW_CONTEXT_WORDS = ["hopeless", "confused", "technical", "helpless", "emotional", "panics"]


def _user_turn(row) -> int:
    return next(i for i, (role, content) in enumerate(row["turns"]) if raw_role(role) == "user" and content.strip())


def plant_audit(c: Corpus) -> None:
    r = random.Random(AUDIT_SEED)
    family_size = Counter(row["family"] for f in FILES for row in c.order[f])
    cands = {f: [row for row in c.order[f] if family_size[row["family"]] == 1 and not row.get("planted")
                 and not row.get("junk")] for f in FILES}
    for row, line in zip(r.sample(cands[CHAT], 2) + r.sample(cands[CSVF], 2), OFFENSIVE_USER, strict=True):
        t = row["turns"][_user_turn(row)]
        t[1] = f"{t[1]} {line}"
        row["audit"] = {"kind": "offensive", "role": "user", "text": line}
    taken = {id(x) for f in FILES for x in c.order[f] if x.get("audit")}
    for row, line in zip(r.sample([x for x in cands[CHAT] if id(x) not in taken], 2), OFFENSIVE_ASSISTANT, strict=True):
        t = next(t for t in reversed(row["turns"]) if t[0] == "assistant")
        t[1] = f"{line} {t[1]}"
        row["audit"] = {"kind": "offensive", "role": "assistant", "text": line}
    for k, row in enumerate(r.sample([x for x in cands[SKEW_FILE] if not x.get("audit")], SKEW_ROWS)):
        line = SKEW_SENTENCES[k % len(SKEW_SENTENCES)]
        t = row["turns"][_user_turn(row)]
        t[1] = f"{t[1]} {line}"
        row["audit"] = {"kind": "gender_skew", "role": "user", "text": line}


# ----------------------------------------------------------------------------- serialization
SHAREGPT_FROM = {"system": "system", "user": "human", "assistant": "gpt"}


def record(row, i):
    f, t = row["file"], row["turns"]
    if f == CHAT:
        return {"messages": [{"role": a, "content": b} for a, b in t], "category": row["cat"], "product": row["product"]}
    if f == ALPACA:
        return {"instruction": t[0][1], "input": t[1][1], "output": t[2][1], "category": row["cat"]}
    if f == SHAREGPT:
        return {"conversations": [{"from": SHAREGPT_FROM[a], "value": b} for a, b in t], "category": row["cat"]}
    if f == PQA:
        return {"prompt": t[0][1], "completion": t[1][1], "category": "product"}
    return {"ticket_id": f"TKT-{24100 + 3 * i}", "channel": row["channel"], "customer_message": t[0][1],
            "agent_reply": t[1][1], "category": row["cat"]}


CSV_HEADER = ["ticket_id", "channel", "customer_message", "agent_reply", "category"]


def serialize(f, rows) -> tuple[bytes, list[int]]:
    """File bytes and the 1-based physical line each record starts on."""
    recs = [record(r, i) for i, r in enumerate(rows)]
    if f in (CHAT, PQA):
        lines = [json.dumps(x, ensure_ascii=False) for x in recs]
        return ("\n".join(lines) + "\n").encode("utf-8"), list(range(1, len(recs) + 1))
    if f in (ALPACA, SHAREGPT):
        lines = [json.dumps(x, ensure_ascii=False) for x in recs]
        text = "[\n" + ",\n".join(lines) + "\n]\n"
        return text.encode("utf-8"), list(range(2, len(recs) + 2))
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_HEADER)
    starts, line = [], 2
    for x in recs:
        one = io.StringIO()
        csv.writer(one, lineterminator="\n").writerow([x[k] for k in CSV_HEADER])
        starts.append(line)
        line += one.getvalue().count("\n")
        buf.write(one.getvalue())
    return buf.getvalue().encode("utf-8"), starts


# ----------------------------------------------------------------------------- malformed file
def malformed_bytes() -> tuple[bytes, list[dict]]:
    def rec(u, a):
        return json.dumps({"messages": [{"role": "user", "content": u}, {"role": "assistant", "content": a}]},
                          ensure_ascii=False).encode("utf-8")
    lines: list[tuple[bytes, str | None]] = [
        (b"\xef\xbb\xbf" + rec("Do your stores rent snowshoes?",
                               "Some of our mountain stores rent snowshoes by the day; call your local store to check availability."), None),
        (rec("Is the outlet store open on Sundays?",
             "Yes, the outlet is open on Sundays from 10 a.m. to 5 p.m."), None),
        (b"", None),
        (b'{"messages": [{"role": "user", "content": "Can I get a rain check on the sale?"}, {"role": "assistant", "content": "Rain checks are', "invalid_json"),
        (rec("Do you sell climbing ropes by the foot?",
             "We sell ropes only in standard precut lengths, such as 60 and 70 meters."), None),
        (b"[1, 2]", "not_an_object"),
        (json.dumps({"category": "orders", "product": "Glow 150", "prompt_text": "Where are my batteries?"}).encode(), "missing_field"),
        (b"", None),
        (json.dumps({"messages": [{"role": "user", "content": "Beep?"}, {"role": "robot", "content": "Boop."}]}).encode(), "unknown_role"),
        (json.dumps({"messages": [{"role": "user", "content": "How many stakes come with the tent?"}, {"role": "assistant", "content": 8}]}).encode(), "wrong_type"),
        (rec("Can I bring my dog into your stores?",
             "Leashed, friendly dogs are welcome in all of our stores."), None),
        (b'{"messages": [], "category": "orders"}', "empty_conversation"),
        (b'{"messages": [{"role": "user", "content": "Is the \xff\xfe tent in stock?"}, {"role": "assistant", "content": "Yes."}]}', "not_utf8"),
        (rec("Do you offer gift wrapping?",
             "We do not gift wrap online orders, but every order can include a gift receipt."), None),
    ]
    truth = [{"file": "malformed/broken_chat.jsonl", "line": i + 1, "kind": k} for i, (_, k) in enumerate(lines) if k]
    return b"\r\n".join(b for b, _ in lines) + b"\r\n", truth


# ----------------------------------------------------------------------------- truth, checks, output
PII_PATTERNS = {
    "ORDER_NUMBER": r"RO-\d{7}", "CLAIM_NUMBER": r"CLM-\d{6}",
    "EMAIL_ADDRESS": r"[a-z0-9._]+@[a-z.]+\.(com|net|org)",
    "PHONE_NUMBER": r"(\+1 )?(\(\d{3}\) |\d{3}[-. ])\d{3}[-. ]\d{4}",
    "CREDIT_CARD": r"[\d -]{15,19}", "US_ADDRESS": r"\d+ .+, .+, [A-Z]{2} \d{5}",
    "PERSON": r"[A-Z][a-z]+ [A-Z][a-z]+", "DATE_OF_BIRTH": r".*\d{4}.*",
}


def fail(msg):
    print("CHECK FAILED:", msg, file=sys.stderr)
    sys.exit(1)


def build_truth(c: Corpus, starts: dict) -> dict:
    loc = {}
    for f in FILES:
        for row, line in zip(c.order[f], starts[f], strict=False):
            loc[id(row)] = {"file": f, "line": line}
    truth = {"files": {f: {"format": FORMATS[f], "rows": len(c.order[f])} for f in FILES}}
    truth["exact_duplicates"] = sorted(
        [{"dup": loc[id(d)], "of": loc[id(s)], "variant": d["variant"]} for d, s in c.exact],
        key=lambda x: (FILES.index(x["dup"]["file"]), x["dup"]["line"]))
    truth["near_duplicates"] = sorted(
        [{"a": loc[id(s)], "b": loc[id(d)], "jaccard_word3": j, "edit": d["edit"]} for d, s, j in c.near],
        key=lambda x: (FILES.index(x["b"]["file"]), x["b"]["line"]))
    truth["paraphrases"] = sorted([{"a": loc[id(a)], "b": loc[id(b)]} for a, b in c.para],
                                  key=lambda x: (FILES.index(x["a"]["file"]), x["a"]["line"]))
    pii = []
    for f in FILES:
        for row, line in zip(c.order[f], starts[f], strict=False):
            seen = set()
            for role, content in row["turns"]:
                if role == "system":
                    continue
                for value, typ in c.g.pii.registry.items():
                    key = (raw_role(role), value)
                    if value in content and key not in seen:
                        seen.add(key)
                        pii.append({"file": f, "line": line, "role": raw_role(role), "type": typ, "value": value})
    truth["pii"] = pii
    truth["junk"] = [dict(loc[id(r)], kind=r["junk"]) for f in FILES for r in c.order[f] if r.get("junk")]
    audit = [dict(loc[id(r)], **r["audit"]) for f in FILES for r in c.order[f] if r.get("audit")]
    truth["offensive"] = [{k: v for k, v in a.items() if k != "kind"} for a in audit if a["kind"] == "offensive"]
    truth["gender_skew"] = {"file": SKEW_FILE, "gender": "female", "context_words": SKEW_CONTEXT_WORDS,
                            "lines": sorted(a["line"] for a in audit if a["kind"] == "gender_skew")}
    return truth


def check(c: Corpus, truth: dict, files: dict) -> None:
    rows = [r for f in FILES for r in c.order[f]]
    sh = [(shingles(conv_text(row_turns(r))), shingles(conv_text(row_turns(r)), _tokens_unicode)) for r in rows]
    worst = 0.0
    for i in range(len(rows)):
        for j in range(i + 1, len(rows)):
            if rows[i]["family"] == rows[j]["family"]:
                continue
            s = max(jaccard(sh[i][0], sh[j][0]), jaccard(sh[i][1], sh[j][1]))
            worst = max(worst, s)
            if s >= 0.5:
                fail(f"unplanted pair too similar ({s:.2f}): {rows[i]['file']} / {rows[j]['file']}")
    for d, s, _j in c.near:
        if min(sims(row_turns(d), row_turns(s))) < 0.8:
            fail("near duplicate below 0.8")
    for d, s in c.exact:
        if norm_messages(d) != norm_messages(s):
            fail("exact duplicate differs after NFC + strip")
        if d["variant"] != "identical" and row_messages(d) == row_messages(s):
            fail("variant duplicate is byte-identical")
    for a, b in c.para:
        if max(sims(row_turns(a), row_turns(b))) >= 0.3:
            fail("paraphrase pair too similar")
    asked, para_family = {}, {id(b): a["family"] for a, b in c.para}
    for r in rows:
        family = para_family.get(id(r), r["family"])
        if asked.setdefault(topic(r), family) != family:
            fail(f"two unrelated rows ask the same question: {topic(r)}")
    # every planted location holds the right record and every PII value is verbatim in it
    parsed = {}
    for f in FILES:
        data = files[f].decode("utf-8")
        lines = data.split("\n")
        if f == CSVF:
            recs = list(csv.DictReader(io.StringIO(data, newline="")))
            parsed[f] = {ln: r for ln, r in zip(truth_lines(truth, f, c), recs, strict=False)}
            for _row, ln in zip(c.order[f], truth_lines(truth, f, c), strict=False):
                if not lines[ln - 1].startswith("TKT-"):
                    fail(f"csv start line {ln} wrong")
        else:
            out = {}
            for _k, ln in enumerate(truth_lines(truth, f, c)):
                text = lines[ln - 1].rstrip(",")
                out[ln] = json.loads(text)
            parsed[f] = out
            json.loads(data) if f in (ALPACA, SHAREGPT) else None
    for p in truth["pii"]:
        rec = parsed[p["file"]][p["line"]]
        if p["value"] not in json.dumps(rec, ensure_ascii=False) and p["value"] not in str(rec):
            fail(f"PII {p['value']} not in {p['file']}:{p['line']}")
        if not re.fullmatch(PII_PATTERNS[p["type"]], p["value"]):
            fail(f"PII value {p['value']!r} does not look like {p['type']}")
        if p["type"] == "CREDIT_CARD" and not luhn_ok(p["value"]):
            fail(f"card {p['value']} fails Luhn")
    for a in truth["offensive"]:
        if a["text"] not in json.dumps(parsed[a["file"]][a["line"]], ensure_ascii=False) + str(parsed[a["file"]][a["line"]]):
            fail(f"offensive line not in {a['file']}:{a['line']}")
    for j in truth["junk"]:
        if j["line"] not in parsed[j["file"]]:
            fail("junk line does not start a record")
    total = sum(len(b) for b in files.values())
    if total > 1_500_000:
        fail(f"corpus too large: {total} bytes")
    c.worst_unplanted = worst


def truth_lines(truth, f, c):
    return c.starts[f]


def main() -> None:
    c = Corpus(SEED)
    c.build()
    plant_audit(c)
    files, c.starts = {}, {}
    for f in FILES:
        files[f], c.starts[f] = serialize(f, c.order[f])
    truth = build_truth(c, c.starts)
    mal, mal_truth = malformed_bytes()
    truth["malformed"] = mal_truth
    check(c, truth, files)
    for f in FILES:
        (HERE / f).write_bytes(files[f])
    (HERE / "malformed").mkdir(exist_ok=True)
    (HERE / "malformed" / "broken_chat.jsonl").write_bytes(mal)
    write_docs()
    (HERE / "planted.json").write_text(json.dumps(truth, indent=1, ensure_ascii=False) + "\n", encoding="utf-8",
                                       newline="\n")
    (HERE / "README.md").write_text(readme(truth, c), encoding="utf-8", newline="\n")
    print(f"rows: {', '.join(f'{f}={len(c.order[f])}' for f in FILES)}")
    print(f"exact={len(truth['exact_duplicates'])} near={len(truth['near_duplicates'])} "
          f"paraphrases={len(truth['paraphrases'])} pii={len(truth['pii'])} "
          f"(rows {len({(p['file'], p['line']) for p in truth['pii']})}) junk={len(truth['junk'])} "
          f"malformed={len(truth['malformed'])}; max unplanted Jaccard {c.worst_unplanted:.3f}")


def readme(truth, c) -> str:
    from collections import Counter
    rows = truth["files"]
    n_exact = len(truth["exact_duplicates"])
    cross = sum(1 for x in truth["exact_duplicates"] if x["dup"]["file"] != x["of"]["file"])
    variants = Counter(x["variant"] for x in truth["exact_duplicates"])
    edits = Counter(x["edit"] for x in truth["near_duplicates"])
    js = [x["jaccard_word3"] for x in truth["near_duplicates"]]
    para_cross = sum(1 for x in truth["paraphrases"] if x["a"]["file"] != x["b"]["file"])
    pii_types = Counter(p["type"] for p in truth["pii"])
    pii_roles = Counter(p["role"] for p in truth["pii"])
    pii_rows = len({(p["file"], p["line"]) for p in truth["pii"]})
    junk = Counter(j["kind"] for j in truth["junk"])
    desc = {"support_chat.jsonl": "OpenAI chat JSONL: `{\"messages\": [{\"role\", \"content\"}], \"category\", \"product\"}`; some rows have a system prompt, some are multi-turn",
            "faq_alpaca.json": "Alpaca JSON array, one record per line (record *k* is on line *k*+1): `{\"instruction\", \"input\", \"output\", \"category\"}`",
            "tickets_sharegpt.json": "ShareGPT JSON array, one record per line: `{\"conversations\": [{\"from\": human/gpt/system, \"value\"}], \"category\"}`",
            "product_qa.jsonl": "prompt/completion JSONL: `{\"prompt\", \"completion\", \"category\": \"product\"}`",
            "claims.csv": "CSV (`ticket_id,channel,customer_message,agent_reply,category`), standard `csv` quoting; some cells contain commas, quotes and line breaks (read with `--csv-map prompt=customer_message,response=agent_reply`)"}
    out = ["# Sample data: Ridgeline Outfitters support corpus", "",
           "A small, entirely **fictional** customer-support corpus for *Ridgeline Outfitters*, an invented "
           "outdoor-gear retailer (tents, sleeping bags, boots, jackets, stoves, backpacks, headlamps, ...). "
           "It was written for Fine-Tuning Data Studio and is released with the project under the **Apache-2.0** "
           "license. All people, e-mail addresses, phone numbers, postal addresses, card numbers, order and claim "
           "numbers are invented; card numbers are well-known test numbers or random digits with a valid Luhn check digit.", "",
           "Everything here is produced by `generate.py` (Python 3 standard library only, fixed seed "
           f"`{SEED}`): `python3 sample_data/generate.py` rewrites every file byte for byte and exits non-zero "
           "if one of its self-checks fails (see below). Do not edit the generated files by hand.", "",
           "## Files", "", "| file | format | rows | shape |", "|---|---|---|---|"]
    for f in FILES:
        out.append(f"| `{f}` | {rows[f]['format']} | {rows[f]['rows']} | {desc[f]} |")
    out += ["| `docs/*.md` | text | 4 | policy documents: returns, warranty, shipping, product care (400-800 words each) |",
            f"| `malformed/broken_chat.jsonl` | openai | 5 valid + {len(truth['malformed'])} bad | deliberately broken file (see below) |",
            "| `planted.json` | | | machine-readable truth about everything planted |", "",
            f"In total {sum(r['rows'] for r in rows.values())} conversations. Categories are `returns`, `warranty`, "
            "`orders` and `product`. Answers are 40-150 words and follow the policy documents: 60-day returns with "
            "proof of purchase, a 15% restocking fee on used items (never on defects), store credit at the lowest "
            "price of the last 90 days without a receipt, a $6.95 prepaid return label, a 2-year limited warranty "
            "(5 years on tent and backpack seams, 1 year on rechargeable batteries), claims with an order number and "
            "photos answered with a `CLM-` number within 1 business day and reviewed within 5 business days, free "
            "standard shipping over $75 ($7.95 otherwise, 3-5 business days), express $19.95 (1-2 business days), "
            "Canada $14.95 (7-12 business days).", "",
            "## What is planted", "",
            "`planted.json` is the truth the tests use; the numbers below are copied from it. A `line` is the "
            "1-based physical line where a record starts: the line itself for JSONL, *k*+1 for record *k* of a "
            "JSON array, and for the CSV the line where the record starts (header = line 1, embedded line breaks "
            "of earlier records counted).", "",
            f"- **Exact duplicates: {n_exact}** (`exact_duplicates`: `dup` is a copy `of` an earlier row). "
            f"{variants.get('identical', 0)} are identical, {variants.get('whitespace', 0)} differ only by extra "
            f"leading/trailing whitespace and {variants.get('nfd', 0)} only by Unicode normalization (\"Café\" "
            "decomposed as e + U+0301); all are equal after NFC + strip of every turn. "
            f"{cross} are across files (a single-turn chat row repeated as an Alpaca record with empty `input`, as "
            "a ShareGPT record, and as a CSV row).",
            f"- **Near duplicates: {len(js)}** (`near_duplicates`): a small edit of another row in the same file "
            f"({', '.join(f'{k}: {v}' for k, v in sorted(edits.items()))}; `typo`: one row has a misspelling the other spells correctly, `swap` "
            "replaces one word, `order` changes the order number, `append` adds a short sentence). Word-3-gram "
            f"Jaccard over the whole conversation is {min(js):.2f}-{max(js):.2f} (recorded per pair).",
            f"- **Paraphrases: {len(truth['paraphrases'])} pairs** (`paraphrases`): same intent, product and facts in "
            f"different words, word-3-gram Jaccard < 0.3; {para_cross} pairs span two files. Each paraphrase is a twin of "
            "its source: the same question, facts, numbers, details, greeting, opener and closer, each said in a "
            "hand-written second phrasing (`PARA_INTENTS`, `TWIN` in `generate.py`); the 15 pairs ask 15 different "
            "questions. No two other rows ask the same question about the same product, so all-MiniLM-L6-v2 (the "
            "`prompt_response` text semantic_dedupe embeds) puts every planted pair at cosine 0.966-0.987 and every "
            "other pair below 0.93, on either side of semantic_dedupe's default 0.95 (measured with "
            "`scripts/paraphrase_cosines.py`; the generator itself uses no model).",
            f"- **PII: {len(truth['pii'])} values in {pii_rows} rows** (`pii`; {pii_roles.get('user', 0)} in user "
            f"turns, {pii_roles.get('assistant', 0)} in assistant turns; Alpaca `instruction`/`input` and CSV "
            "`customer_message` count as user). Types: "
            + ", ".join(f"`{k}` {v}" for k, v in sorted(pii_types.items())) + ".",
            "  - `PERSON`: invented first + last name (\"My name is Maria Okafor.\");",
            "  - `EMAIL_ADDRESS`: addresses at example.com / example.net / example.org;",
            "  - `PHONE_NUMBER`: US numbers in the fictional 555-01xx range, formatted `(303) 555-0142`, "
            "`+1 303 555 0142`, `+1 (303) 555-0142`, `303-555-0142` or `303.555.0142`;",
            "  - `US_ADDRESS`: street, optional apartment, city, state, ZIP (`1842 Larkspur Lane, Boulder, CO 80302`);",
            "  - `ORDER_NUMBER`: `RO-` + 7 digits; `CLAIM_NUMBER`: `CLM-` + 6 digits;",
            "  - `CREDIT_CARD`: Luhn-valid numbers (4111 1111 1111 1111, 5500 0000 0000 0004 and computed Visa, "
            "Mastercard, Amex and Discover numbers) with spaces, dashes or no separators;",
            "  - `DATE_OF_BIRTH`: always with context (\"my date of birth is 03/14/1986\", \"DOB: 1979-07-02\", "
            "\"I was born on July 2, 1979\").",
            "  Every `value` occurs verbatim in its record. Duplicated rows repeat their PII and it is listed for each copy.",
            f"- **Junk: {len(truth['junk'])} rows** (`junk`): "
            + ", ".join(f"`{k}` {v}" for k, v in sorted(junk.items()))
            + " (boilerplate is \"Thank you for contacting us. Your request has been received.\" or \"As an AI "
            "language model, I cannot help with that.\"; truncated answers stop mid-sentence after a few words; "
            "echo answers repeat the question; repetition answers repeat one word).",
            f"- **Offensive lines: {len(truth['offensive'])}** (`offensive`): "
            f"{sum(a['role'] == 'user' for a in truth['offensive'])} customers swear at the agent (user turn; the "
            f"answer stays calm) and {sum(a['role'] == 'assistant' for a in truth['offensive'])} agent answers are "
            "rude (assistant turn); each `text` is verbatim in its record.",
            f"- **Gender skew** (`gender_skew`): {len(truth['gender_skew']['lines'])} rows of "
            f"`{truth['gender_skew']['file']}` mention a woman (wife, mother, daughter, ...), always next to "
            f"helplessness ({', '.join(truth['gender_skew']['context_words'])}); every other gendered mention in "
            "the corpus is male (\"my brother\", \"my dad\"), so that file skews the set.",
            "- **Malformed file** `malformed/broken_chat.jsonl`: UTF-8 BOM, CRLF line endings, blank lines 3 and 8, "
            "valid records on lines 1, 2, 5, 11 and 14, and one bad line of each kind: "
            + ", ".join(f"line {m['line']} `{m['kind']}`" for m in truth["malformed"]) + ".", "",
            "All other pairs of rows (any file) have word-3-gram Jaccard below 0.5 "
            f"(the maximum is {c.worst_unplanted:.2f}). The main files contain no malformed records.", "",
            "## Self-checks in `generate.py`", "",
            "Word-3-gram Jaccard (lowercase, split on non-alphanumerics, all turns joined; checked with both an "
            "ASCII and a Unicode word split): < 0.5 for every pair not planted as related, >= 0.8 for near "
            "duplicates, < 0.3 for paraphrases; no two rows outside one planted family ask the same question "
            "(same intent or product question type, product and question wording); exact duplicates equal after "
            "NFC + strip per turn; every PII value "
            "verbatim in its record and of the right shape (cards pass Luhn); every line number in `planted.json` "
            "starts the right record; total size under 1.5 MB.", ""]
    return "\n".join(out)


if __name__ == "__main__":
    main()
