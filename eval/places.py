"""Places outside any one gazetteer that answers name: regions (to read "City, Region") and big cities.

General models often answer with a famous place in another city ("Peavey Plaza in Minneapolis,
Minnesota"). The parser must notice the other city, or a street name shared by many cities ("Fifth
Avenue") would count as right. Two cues, both data here:

- a capitalised phrase right before ", <region>" is a city (``REGIONS``: US states and their postal
  codes, Canadian provinces, countries); postal codes count only in capitals ("PA", not "pa");
- a city from ``WORLD_CITIES``, the cities general models name most, capitalised.

A gazetteer's own city, districts and streets always win over these lists.
"""

from __future__ import annotations

US_STATES = {
    "Alabama": "AL", "Alaska": "AK", "Arizona": "AZ", "Arkansas": "AR", "California": "CA",
    "Colorado": "CO", "Connecticut": "CT", "Delaware": "DE", "Florida": "FL", "Georgia": "GA",
    "Hawaii": "HI", "Idaho": "ID", "Illinois": "IL", "Indiana": "IN", "Iowa": "IA", "Kansas": "KS",
    "Kentucky": "KY", "Louisiana": "LA", "Maine": "ME", "Maryland": "MD", "Massachusetts": "MA",
    "Michigan": "MI", "Minnesota": "MN", "Mississippi": "MS", "Missouri": "MO", "Montana": "MT",
    "Nebraska": "NE", "Nevada": "NV", "New Hampshire": "NH", "New Jersey": "NJ", "New Mexico": "NM",
    "New York": "NY", "North Carolina": "NC", "North Dakota": "ND", "Ohio": "OH", "Oklahoma": "OK",
    "Oregon": "OR", "Pennsylvania": "PA", "Rhode Island": "RI", "South Carolina": "SC",
    "South Dakota": "SD", "Tennessee": "TN", "Texas": "TX", "Utah": "UT", "Vermont": "VT",
    "Virginia": "VA", "Washington": "WA", "West Virginia": "WV", "Wisconsin": "WI", "Wyoming": "WY",
    "District of Columbia": "DC",
}

PROVINCES = ["Ontario", "Quebec", "British Columbia", "Alberta", "Manitoba", "Nova Scotia",
             "Uusimaa", "Bavaria", "England", "Scotland", "Wales", "Catalonia", "Ile-de-France"]

COUNTRIES = [
    "USA", "US", "U.S.", "U.S.A.", "United States", "United States of America", "America", "Canada",
    "Mexico", "UK", "U.K.", "United Kingdom", "Great Britain", "Ireland", "France", "Germany",
    "Spain", "Portugal", "Italy", "Netherlands", "Belgium", "Switzerland", "Austria", "Denmark",
    "Norway", "Sweden", "Finland", "Suomi", "Iceland", "Estonia", "Latvia", "Lithuania", "Poland",
    "Czech Republic", "Czechia", "Hungary", "Greece", "Turkey", "Russia", "Ukraine", "Israel",
    "Egypt", "South Africa", "Nigeria", "Kenya", "Morocco", "India", "Pakistan", "China",
    "Hong Kong", "Taiwan", "Japan", "South Korea", "Korea", "Singapore", "Malaysia", "Thailand",
    "Vietnam", "Indonesia", "Philippines", "Australia", "New Zealand", "Brazil", "Argentina",
    "Chile", "Peru", "Colombia", "United Arab Emirates", "UAE", "Saudi Arabia", "Qatar",
]

WORLD_CITIES = [
    "New York", "New York City", "NYC", "Los Angeles", "Chicago", "Houston", "Phoenix",
    "Philadelphia", "San Antonio", "San Diego", "Dallas", "San Jose", "Austin", "San Francisco",
    "Seattle", "Denver", "Boston", "Washington, D.C.", "Nashville", "Baltimore", "Portland",
    "Las Vegas", "Detroit", "Minneapolis", "Saint Paul", "Cleveland", "Cincinnati", "Columbus",
    "Atlanta", "Miami", "New Orleans", "St. Louis", "Kansas City", "Salt Lake City", "Oakland",
    "Sacramento", "Honolulu", "Buffalo", "Milwaukee", "Indianapolis", "Charlotte", "Richmond",
    "Toronto", "Montreal", "Vancouver", "Ottawa", "Calgary", "Mexico City", "London", "Manchester",
    "Liverpool", "Edinburgh", "Glasgow", "Dublin", "Paris", "Lyon", "Marseille", "Berlin", "Munich",
    "Hamburg", "Frankfurt", "Cologne", "Vienna", "Zurich", "Geneva", "Amsterdam", "Rotterdam",
    "Brussels", "Copenhagen", "Oslo", "Stockholm", "Gothenburg", "Helsinki", "Espoo", "Tampere",
    "Turku", "Tallinn", "Riga", "Vilnius", "Warsaw", "Krakow", "Prague", "Budapest", "Madrid",
    "Barcelona", "Lisbon", "Porto", "Rome", "Milan", "Venice", "Florence", "Naples", "Athens",
    "Istanbul", "Moscow", "Saint Petersburg", "Kyiv", "Tel Aviv", "Jerusalem", "Cairo", "Dubai",
    "Abu Dhabi", "Doha", "Mumbai", "Delhi", "New Delhi", "Bangalore", "Beijing", "Shanghai",
    "Shenzhen", "Guangzhou", "Hong Kong", "Taipei", "Tokyo", "Osaka", "Kyoto", "Seoul", "Singapore",
    "Bangkok", "Kuala Lumpur", "Jakarta", "Manila", "Hanoi", "Sydney", "Melbourne", "Brisbane",
    "Perth", "Auckland", "Wellington", "Sao Paulo", "Rio de Janeiro", "Buenos Aires", "Santiago",
    "Lima", "Bogota", "Cape Town", "Johannesburg", "Nairobi", "Lagos", "Pittsburgh",
]


def region_names() -> list[str]:
    """Every region name and postal code (see :func:`capitals_only`)."""
    return list(US_STATES) + sorted(set(US_STATES.values())) + PROVINCES + COUNTRIES


def capitals_only(name: str) -> bool:
    """Abbreviations ("PA", "US", "U.K.") are words in lower case ("pa", "us"): match them only in
    capitals."""
    letters = name.replace(".", "")
    return letters.isalpha() and letters.isupper()
