"""Fixed vocabularies the synthetic shop is built from.

Everything here is static data: the category tree with price bands, brand and adjective
pools per department, people's names, cities, and the device/browser fleet. Keeping it in
one place lets the generators stay small and keeps the output stable across releases
(changing these lists changes every seeded workload).
"""

from __future__ import annotations

from typing import NamedTuple


class Leaf(NamedTuple):
    """A leaf category: display name, singular noun for product names, price band in USD."""

    name: str
    noun: str
    low: float
    high: float


# department -> subcategory -> leaves. Paths render as "Outdoor > Hiking > Backpacks".
CATEGORY_TREE: dict[str, dict[str, tuple[Leaf, ...]]] = {
    "Outdoor": {
        "Hiking": (Leaf("Backpacks", "Backpack", 45, 260), Leaf("Trekking Poles", "Trekking Poles", 25, 140),
                   Leaf("Hiking Boots", "Hiking Boot", 80, 280)),
        "Camping": (Leaf("Tents", "Tent", 90, 650), Leaf("Sleeping Bags", "Sleeping Bag", 40, 380),
                    Leaf("Camp Stoves", "Camp Stove", 30, 180)),
        "Cycling": (Leaf("Helmets", "Helmet", 35, 250), Leaf("Bike Lights", "Bike Light", 12, 90),
                    Leaf("Jerseys", "Jersey", 30, 140)),
    },
    "Home & Kitchen": {
        "Cookware": (Leaf("Frying Pans", "Frying Pan", 20, 180), Leaf("Saucepans", "Saucepan", 25, 160),
                     Leaf("Dutch Ovens", "Dutch Oven", 45, 380)),
        "Coffee & Tea": (Leaf("Espresso Machines", "Espresso Machine", 120, 900),
                         Leaf("Grinders", "Grinder", 25, 300), Leaf("Kettles", "Kettle", 20, 150)),
        "Bedding": (Leaf("Duvets", "Duvet", 60, 400), Leaf("Pillows", "Pillow", 15, 120),
                    Leaf("Sheet Sets", "Sheet Set", 35, 260)),
    },
    "Electronics": {
        "Audio": (Leaf("Headphones", "Headphones", 40, 450), Leaf("Earbuds", "Earbuds", 25, 280),
                  Leaf("Speakers", "Speaker", 30, 500)),
        "Computers": (Leaf("Keyboards", "Keyboard", 25, 220), Leaf("Mice", "Mouse", 15, 130),
                      Leaf("Monitors", "Monitor", 130, 1100)),
        "Smart Home": (Leaf("Smart Plugs", "Smart Plug", 10, 50), Leaf("Cameras", "Camera", 30, 250),
                       Leaf("Thermostats", "Thermostat", 70, 280)),
    },
    "Apparel": {
        "Men": (Leaf("T-Shirts", "T-Shirt", 12, 55), Leaf("Jackets", "Jacket", 60, 380),
                Leaf("Jeans", "Jeans", 35, 160)),
        "Women": (Leaf("Dresses", "Dress", 30, 240), Leaf("Sweaters", "Sweater", 35, 190),
                  Leaf("Leggings", "Leggings", 20, 110)),
        "Shoes": (Leaf("Sneakers", "Sneaker", 45, 220), Leaf("Sandals", "Sandal", 20, 120),
                  Leaf("Boots", "Boot", 70, 320)),
    },
    "Beauty": {
        "Skincare": (Leaf("Moisturizers", "Moisturizer", 10, 90), Leaf("Serums", "Serum", 15, 140),
                     Leaf("Sunscreen", "Sunscreen", 8, 45)),
        "Hair": (Leaf("Shampoo", "Shampoo", 6, 40), Leaf("Conditioner", "Conditioner", 6, 40),
                 Leaf("Hair Dryers", "Hair Dryer", 30, 420)),
        "Fragrance": (Leaf("Perfume", "Eau de Parfum", 35, 260), Leaf("Cologne", "Cologne", 30, 200),
                      Leaf("Candles", "Candle", 12, 75)),
    },
    "Sports & Fitness": {
        "Running": (Leaf("Running Shoes", "Running Shoe", 70, 250), Leaf("Running Watches", "GPS Watch", 120, 700),
                    Leaf("Hydration Packs", "Hydration Pack", 25, 130)),
        "Strength": (Leaf("Dumbbells", "Dumbbell Set", 25, 400), Leaf("Kettlebells", "Kettlebell", 20, 150),
                     Leaf("Resistance Bands", "Resistance Band Set", 10, 60)),
        "Yoga": (Leaf("Yoga Mats", "Yoga Mat", 18, 140), Leaf("Yoga Blocks", "Yoga Block", 8, 40),
                 Leaf("Yoga Straps", "Yoga Strap", 6, 30)),
    },
    "Toys & Games": {
        "Board Games": (Leaf("Strategy Games", "Strategy Game", 25, 120), Leaf("Party Games", "Party Game", 15, 50),
                        Leaf("Puzzles", "Puzzle", 10, 45)),
        "Building": (Leaf("Building Sets", "Building Set", 20, 400), Leaf("Model Kits", "Model Kit", 15, 150),
                     Leaf("Marble Runs", "Marble Run", 25, 120)),
        "Outdoor Play": (Leaf("Kites", "Kite", 10, 70), Leaf("Water Blasters", "Water Blaster", 8, 45),
                         Leaf("Scooters", "Scooter", 40, 250)),
    },
    "Books": {
        "Fiction": (Leaf("Mystery", "Mystery Novel", 9, 30), Leaf("Science Fiction", "Sci-Fi Novel", 9, 30),
                    Leaf("Romance", "Romance Novel", 8, 25)),
        "Non-Fiction": (Leaf("Biography", "Biography", 12, 40), Leaf("History", "History Book", 12, 45),
                        Leaf("Cooking", "Cookbook", 15, 50)),
        "Kids": (Leaf("Picture Books", "Picture Book", 7, 25), Leaf("Early Readers", "Early Reader", 5, 18),
                 Leaf("Activity Books", "Activity Book", 5, 20)),
    },
}

BRANDS: dict[str, tuple[str, ...]] = {
    "Outdoor": ("Northpeak", "Trailcraft", "Summit & Pine", "Ridgeline", "Alder Co."),
    "Home & Kitchen": ("Hearthstone", "Copperleaf", "Maison Vale", "Brewhaus", "Linen Lane"),
    "Electronics": ("Voltix", "Auralis", "Pixelform", "Nimbus Labs", "Korra"),
    "Apparel": ("Threadwell", "Urban Loom", "Marlow & Finch", "Basis", "Kestrel"),
    "Beauty": ("Lumiere", "Botanica", "Dewdrop", "Sable & Co.", "Purelab"),
    "Sports & Fitness": ("Stridewell", "Ironclad", "Zenflow", "Pacer", "Forge Athletics"),
    "Toys & Games": ("Brickworks", "Meeple House", "Skyward", "Tinker Toys", "Playfort"),
    "Books": ("Lanternfly Press", "Harbor Books", "Quillstone", "Paper Moon", "Atlas House"),
}

ADJECTIVES: dict[str, tuple[str, ...]] = {
    "Outdoor": ("Ultralight", "Alpine", "Trail", "Expedition", "Waterproof", "Packable", "Rugged"),
    "Home & Kitchen": ("Classic", "Cast Iron", "Nonstick", "Artisan", "Everyday", "Pro", "Organic Cotton"),
    "Electronics": ("Wireless", "Pro", "Noise-Cancelling", "Smart", "Compact", "Ultra", "Studio"),
    "Apparel": ("Slim Fit", "Relaxed", "Merino", "Organic", "Classic", "Vintage", "Performance"),
    "Beauty": ("Hydrating", "Gentle", "Radiance", "Daily", "Overnight", "Fragrance-Free", "Vitamin C"),
    "Sports & Fitness": ("Pro", "Adjustable", "Lightweight", "Cushioned", "Eco", "Training", "Competition"),
    "Toys & Games": ("Deluxe", "Classic", "Junior", "Family", "Glow-in-the-Dark", "Mega", "Travel"),
    "Books": ("The Silent", "A Winter", "The Last", "Hidden", "The Little", "Beyond the", "Midnight"),
}

# Tags a product can carry beyond its computed ones (bestseller, sale, new).
TAG_POOL: tuple[str, ...] = ("eco", "gift idea", "limited edition", "exclusive", "bundle", "premium")

FIRST_NAMES: tuple[str, ...] = (
    "Olivia", "Liam", "Emma", "Noah", "Ava", "Elijah", "Sophia", "Mateo", "Isabella", "Lucas", "Mia",
    "Levi", "Amelia", "Ethan", "Harper", "James", "Aisha", "Wei", "Priya", "Diego", "Yuki", "Fatima",
    "Omar", "Chloe", "Hana", "Ravi", "Lena", "Tomás", "Zoe", "Kwame", "Ingrid", "Mohammed", "Nora",
    "Samuel", "Grace", "Arjun", "Camila", "Leo", "Maya", "Jonas",
)
LAST_NAMES: tuple[str, ...] = (
    "Smith", "Johnson", "Garcia", "Nguyen", "Patel", "Kim", "Müller", "Rossi", "Silva", "Cohen",
    "Okafor", "Tanaka", "Andersson", "Kowalski", "Martin", "Brown", "Lopez", "Singh", "Chen", "Dubois",
    "Haddad", "Ivanova", "Murphy", "O'Brien", "Santos", "Yilmaz", "Novak", "Larsen", "Mensah", "Reyes",
)


class City(NamedTuple):
    name: str
    country: str
    timezone: str  # IANA name, reported in context.timezone
    utc_offset_hours: int  # a fixed offset is plenty for a diurnal shape
    weight: float


CITIES: tuple[City, ...] = (
    City("New York", "US", "America/New_York", -4, 9), City("Los Angeles", "US", "America/Los_Angeles", -7, 7),
    City("Chicago", "US", "America/Chicago", -5, 5), City("Austin", "US", "America/Chicago", -5, 3),
    City("Seattle", "US", "America/Los_Angeles", -7, 3), City("Denver", "US", "America/Denver", -6, 2),
    City("Toronto", "CA", "America/Toronto", -4, 3), City("Vancouver", "CA", "America/Vancouver", -7, 2),
    City("London", "GB", "Europe/London", 1, 5), City("Manchester", "GB", "Europe/London", 1, 2),
    City("Berlin", "DE", "Europe/Berlin", 2, 3), City("Paris", "FR", "Europe/Paris", 2, 3),
    City("Amsterdam", "NL", "Europe/Amsterdam", 2, 2), City("Stockholm", "SE", "Europe/Stockholm", 2, 1),
    City("Madrid", "ES", "Europe/Madrid", 2, 2), City("Sydney", "AU", "Australia/Sydney", 10, 2),
    City("Melbourne", "AU", "Australia/Melbourne", 10, 1), City("Auckland", "NZ", "Pacific/Auckland", 12, 1),
)
LOCALES: dict[str, str] = {
    "US": "en-US", "CA": "en-CA", "GB": "en-GB", "DE": "de-DE", "FR": "fr-FR", "NL": "nl-NL",
    "SE": "sv-SE", "ES": "es-ES", "AU": "en-AU", "NZ": "en-NZ",
}

# Relative chance that a session starts in each local hour (evening peak, quiet nights).
HOURLY_WEIGHTS: tuple[float, ...] = (
    1.2, 0.7, 0.4, 0.3, 0.3, 0.4, 0.9, 1.8, 2.6, 3.0, 3.2, 3.5,
    4.2, 4.0, 3.4, 3.2, 3.3, 3.8, 4.6, 5.6, 6.2, 5.8, 4.3, 2.4,
)


class DeviceModel(NamedTuple):
    """One kind of device a shopper may use, with what its Segment library reports."""

    platform: str  # "web" or "app"
    type: str  # context.device.type
    model: str
    manufacturer: str
    os_name: str
    os_version: str
    user_agent: str
    library: str
    library_version: str
    weight: float


_WEB_LIB = ("analytics.js", "next-1.74.0")
DEVICE_MODELS: tuple[DeviceModel, ...] = (
    DeviceModel("web", "desktop", "Windows PC", "Microsoft", "Windows", "10.0",
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
                "Chrome/128.0.0.0 Safari/537.36", *_WEB_LIB, 26),
    DeviceModel("web", "desktop", "Macintosh", "Apple", "Mac OS X", "14.6",
                "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) "
                "Version/17.6 Safari/605.1.15", *_WEB_LIB, 14),
    DeviceModel("web", "desktop", "Macintosh", "Apple", "Mac OS X", "14.6",
                "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
                "Chrome/128.0.0.0 Safari/537.36", *_WEB_LIB, 10),
    DeviceModel("web", "desktop", "Linux PC", "Unknown", "Linux", "x86_64",
                "Mozilla/5.0 (X11; Linux x86_64; rv:130.0) Gecko/20100101 Firefox/130.0", *_WEB_LIB, 3),
    DeviceModel("web", "mobile", "iPhone", "Apple", "iOS", "17.6",
                "Mozilla/5.0 (iPhone; CPU iPhone OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
                "Gecko) Version/17.6 Mobile/15E148 Safari/604.1", *_WEB_LIB, 18),
    DeviceModel("web", "mobile", "Pixel 8", "Google", "Android", "14",
                "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
                "Chrome/128.0.0.0 Mobile Safari/537.36", *_WEB_LIB, 9),
    DeviceModel("web", "tablet", "iPad", "Apple", "iPadOS", "17.6",
                "Mozilla/5.0 (iPad; CPU OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
                "Version/17.6 Mobile/15E148 Safari/604.1", *_WEB_LIB, 4),
    DeviceModel("app", "ios", "iPhone15,2", "Apple", "iOS", "17.6.1",
                "PersonaShop/3.12.0 (iPhone; iOS 17.6.1; Scale/3.00)", "analytics-swift", "1.6.1", 10),
    DeviceModel("app", "android", "SM-S911B", "samsung", "Android", "14",
                "Dalvik/2.1.0 (Linux; U; Android 14; SM-S911B Build/UP1A.231005.007)",
                "analytics-kotlin", "1.16.3", 6),
)

# Where web sessions come from: (referrer URL, utm source, utm medium); "" means direct.
REFERRERS: tuple[tuple[str, str, str], ...] = (
    ("", "", ""), ("", "", ""), ("", "", ""),
    ("https://www.google.com/", "", ""), ("https://www.google.com/", "", ""),
    ("https://duckduckgo.com/", "", ""), ("https://www.bing.com/", "", ""),
    ("https://l.instagram.com/", "instagram", "social"), ("https://t.co/", "twitter", "social"),
    ("https://mail.example.net/", "newsletter", "email"),
    ("https://deals.example.org/", "deals-blog", "affiliate"),
)

# Book titles are "<adjective> <word>" ("The Silent Harbor"); the brand is the publisher.
BOOK_WORDS: tuple[str, ...] = (
    "Harbor", "Orchard", "Garden", "Lighthouse", "Frontier", "River", "Empire", "Station", "Kitchen",
    "Forest", "Archive", "Voyage", "Compass", "Winter", "Signal", "Kingdom",
)
MODEL_SUFFIXES: tuple[str, ...] = ("II", "2.0", "Plus", "Lite", "Max", "S", "X", "Pro")
